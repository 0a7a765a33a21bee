"""Actions of the main window: the QActions with their shortcuts and tooltips, the menus, the toolbar."""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox, QToolBar

from engine.session import Session
from gui.window.refresh import GROUP_REFRESH_MS
from gui.window.runs import semi_structured_tip


class WindowActions:
    """Builds the QActions, the menus and the toolbar.
    A mixin of :class:`gui.main_window.MainWindow`: it uses the widgets and state that
    the window builds."""

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(f"{tip} ({action.shortcut().toString()})" if shortcut else tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.open_model_action = a("Open &model…", self.open_model_dialog, "Ctrl+O",
                                   "Open a model: demo, torchvision, state_dict, Python file or pickle")
        self.open_data_action = a("Open &data…", self.open_data_dialog, "Ctrl+Shift+O",
                                  "Open evaluation and fine-tuning data")
        self.open_demo_action = a("Open dem&o", self.open_demo, None,
                                  "The built-in LeNet and digits")
        self.open_recipe_action = a("Open &recipe…", self.open_recipe_dialog, "Ctrl+Shift+R",
                                    "Load settings (and model and data) from a recipe JSON")
        self.save_recipe_action = a("&Save recipe…", self.save_recipe_dialog, "Ctrl+S",
                                    "Save the current settings as a recipe JSON that "
                                    "`python main.py --headless` runs")
        self.export_action = a("&Export…", self.export_dialog, "Ctrl+E",
                               "Write the pruned model (.pt / .safetensors), masks and a JSON report")
        self.quit_action = a("&Quit", self.close, "Ctrl+Q", "Quit PruneLab")
        self.prune_action = a("&Prune", self.prune, "Ctrl+P",
                              "Prune the model with the method panel's settings, then measure it")
        self.finetune_action = a("&Fine-tune", self.finetune, "Ctrl+T",
                                 "Fine-tune with the masks held fixed, then measure")
        self.measure_action = a("&Measure", self.measure, "Ctrl+M",
                                "Measure the model against the original (Compare tab)")
        self.stop_action = a("&Stop", self.stop, "Esc", "Stop the running operation within one batch")
        self.measurement_action = a("Measurement se&ttings…", self.edit_measurement, None,
                                    "Latency batch size, timed runs, warm-up and memory layout "
                                    "of the Compare table")
        # not Ctrl+Shift+Z, which is Redo in most applications
        self.revert_action = a("Re&vert", self.revert, "Ctrl+R",
                               "Go back to the original weights (asks first when the pruned "
                               "model was not exported)")
        self.back_action = a("&Back", self.back, "Ctrl+Z",
                             "Return to the model before the last operation (its run stays in the "
                             "Runs tab)")
        self.save_project_action = a("Sa&ve project…", self.save_project_dialog, None,
                                     "One .prunelab file with the recipe, the model as it is now "
                                     "and every stored run of it (no pickles)")
        self.open_project_action = a("Open pro&ject…", self.open_project_dialog, None,
                                     "Restore a session saved with Save project")
        self.shortcuts_action = a("&Keyboard shortcuts", self.show_shortcuts, "F1",
                                  "List the keyboard shortcuts")
        self.scan_action = a("Scan se&nsitivity", self.scan_sensitivity, "Ctrl+Shift+N",
                             "Prune each ticked layer alone over the Sensitivity tab's grid "
                             "(criterion and granularity from the method panel) and plot accuracy")
        self.load_method_action = a("&Load pruning method file…", self.load_method_dialog,
                                    "Ctrl+Shift+M", "Add the pruning methods a Python file defines "
                                    "(runs its code: asks first)")

        menu = self.menuBar().addMenu("&File")
        for action in (self.open_model_action, self.open_data_action, self.open_demo_action,
                       self.open_recipe_action):
            menu.addAction(action)
        self.recent_menu = menu.addMenu("Open rece&nt")
        self.recent_menu.aboutToShow.connect(self._refresh_recent)   # files deleted meanwhile
        menu.addAction(self.load_method_action)
        menu.addSeparator()
        menu.addAction(self.save_recipe_action)
        menu.addAction(self.save_project_action)
        menu.addAction(self.open_project_action)
        menu.addAction(self.export_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        run = self.menuBar().addMenu("&Run")
        for action in (self.prune_action, self.finetune_action, self.measure_action,
                       self.stop_action, self.revert_action):
            run.addAction(action)
        run.addAction(self.back_action)
        run.addAction(self.scan_action)
        run.addSeparator()
        run.addAction(self.measurement_action)
        view = self.menuBar().addMenu("&View")
        for i in range(self.tabs.count()):
            action = self._action("&" + self.tabs.tabText(i), lambda i=i: self.tabs.setCurrentIndex(i),
                                  f"Ctrl+{i + 1}", f"Show the {self.tabs.tabText(i)} tab")
            view.addAction(action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        self.about_action = a("&About PruneLab", self.show_about, None,
                              "Version, licence and where the documentation is")
        help_menu.addAction(self.about_action)

        toolbar = QToolBar("Run")
        toolbar.setObjectName("run_toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        toolbar.setMovable(False)
        for action in (self.open_model_action, self.open_data_action, None, self.prune_action,
                       self.finetune_action, self.measure_action, self.stop_action, None,
                       self.revert_action, self.export_action):
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        self.addToolBar(toolbar)
        self._refresh_recent()

    def _build_extras(self) -> None:
        """Text-model opening, the ticked group's sparsity, layer widths and 2:4 sparse kernels."""
        a = self._action
        self.open_text_demo_action = a("Open &text demo (BiLSTM)", self.open_text_demo, None,
                                       "The built-in BiLSTM and its 4-class news texts")
        self.semi_availability = Session.semi_structured_availability()
        self.semi_action = a("2:4 sparse &kernels (GPU)", self.run_semi_structured, None,
                             semi_structured_tip(self.semi_availability))
        self.semi_mask_action = QAction("Apply a 2:4 magnitude mask first (on the copy)", self)
        self.semi_mask_action.setCheckable(True)
        self.semi_mask_action.setToolTip("Without it only Linear layers already pruned 2:4 (the "
                                         "n:m granularity) are converted; with it every eligible "
                                         "Linear of the GPU copy keeps its 2 largest of every 4 "
                                         "weights. The session's model is never changed.")
        self.semi_mask_action.setEnabled(self.semi_availability.available)
        menus = {m.text(): m.menu() for m in self.menuBar().actions()}
        menus["&File"].insertAction(self.open_recipe_action, self.open_text_demo_action)
        menus["&Run"].addSeparator()
        menus["&Run"].addAction(self.semi_action)
        menus["&Run"].addAction(self.semi_mask_action)
        menus["&Run"].setToolTipsVisible(True)   # the tooltip says why 2:4 is unavailable
        toolbar = self.findChild(QToolBar, "run_toolbar")
        toolbar.addSeparator()
        toolbar.addAction(self.semi_action)   # a disabled button still shows its tooltip
        self.log_view.append("2:4 sparse kernels: " + ("available — " if self.semi_availability.available
                                                        else "unavailable — ")
                             + self.semi_availability.reason)

        self.answers.connect(self.worker.group, self.model_panel.set_group)
        self.answers.connect(self.worker.layer_widths, self.compare.set_layer_widths)
        self.answers.connect(self.worker.semi_structured, self._on_semi_structured)
        self._group_timer = QTimer(self)
        self._group_timer.setSingleShot(True)
        self._group_timer.setInterval(GROUP_REFRESH_MS)
        self._group_timer.timeout.connect(self._send_group)
        self.model_panel.selection_changed.connect(self._group_timer.start)
        self.request.connect(self._sync_group_names)
        self.operation_finished.connect(self._after_operation)

    def show_about(self) -> None:
        from gui.about import show_about
        self.about_box = show_about(self)

    def show_shortcuts(self) -> None:
        lines = [f"{a.shortcut().toString():<14} {a.text().replace('&', '')}"
                 for a in self.actions() if not a.shortcut().isEmpty()]
        QMessageBox.information(self, "Keyboard shortcuts", "\n".join(lines))

