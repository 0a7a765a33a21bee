"""Window layout: a size that fits the screen (the status bar with progress and ETA stays on it, the
Method panel stays reachable on a small or high-DPI screen), and the geometry, dock layout and
method settings remembered across restarts in the window's QSettings."""
from __future__ import annotations

import json
from typing import Optional

from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QApplication, QDockWidget

from engine.config import Recipe, RecipeError

# the title bar and borders a window manager adds around the window (not known before showing)
FRAME_ALLOWANCE = 40
PREFERRED_SIZE = (1500, 940)
LAYOUT_VERSION = 1   # restoreState refuses a state saved by another layout version


class WindowLayout:
    """A mixin of :class:`gui.main_window.MainWindow`."""

    def _fit_to_screen(self, free: Optional[QRect] = None,
                       preferred: tuple[int, int] = PREFERRED_SIZE) -> None:
        """The preferred size, shrunk to the screen's free area with room for the frame, so the
        status bar is on screen (1280x800 included). Where even the minimum width does not fit
        (a 1080p screen at scale 2 is 960 px wide), the Method panel (it scrolls) goes under the
        Model panel instead of lying off the screen's right edge."""
        if free is None:
            screen = self.screen() or QApplication.primaryScreen()
            free = screen.availableGeometry() if screen is not None else None
        width, height = preferred
        model, method = self._dock("model_dock"), self._dock("method_dock")
        if self.dockWidgetArea(method) != Qt.DockWidgetArea.RightDockWidgetArea:
            self.removeDockWidget(method)   # back on the right, beside the views
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, method)
            method.show()
        if free is not None:
            width = min(width, free.width())
            height = min(height, free.height() - FRAME_ALLOWANCE)
            self.layout().activate()   # the minimum of the docks as they are now
            if self.minimumSizeHint().width() > free.width():
                self.splitDockWidget(model, method, Qt.Orientation.Vertical)   # under Model
                self.layout().activate()
        self.resize(max(width, self.minimumSizeHint().width()),
                    max(height, self.minimumSizeHint().height()))

    def _dock(self, name: str) -> QDockWidget:
        return self.findChild(QDockWidget, name)

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        try:
            recipe = self.recipe().to_dict()
        except (RecipeError, ValueError):   # settings that cannot run are not worth keeping
            return
        method = {key: recipe[key] for key in ("prune", "finetune", "schedule", "structured",
                                                 "seed") if key in recipe}
        method["prune"] = {k: v for k, v in method.get("prune", {}).items()
                           if k not in ("include", "per_layer")}   # those name one model's layers
        self.settings.setValue("window/method", json.dumps(method))

    def restore_layout(self) -> None:
        """The last session's geometry, docks and method settings; anything unreadable is
        skipped (a message in the Log), never an error."""
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state, LAYOUT_VERSION)
        text = self.settings.value("window/method")
        if not text:
            return
        try:
            recipe = Recipe.from_dict(json.loads(text))
            panel = self.method_panel
            panel.set_prune_spec(recipe.prune)
            panel.set_finetune_spec(recipe.finetune)
            panel.set_schedule_spec(recipe.schedule)
            panel.set_structured_spec(recipe.structured)
            panel.seed.setValue(recipe.seed)
        except (RecipeError, ValueError, TypeError, KeyError) as exc:
            self.log_view.append(f"last session's method settings not restored: {exc}")
