"""Tooltips that wrap. Qt shows a plain-text tooltip as one line, however long (some of PruneLab's
are a paragraph: 1,100 px wide); a rich-text tooltip is word-wrapped. An event filter shows every
long plain tooltip (widgets, actions in menus, item views and their headers) as rich text, so the
texts themselves stay plain wherever they are set.

The filter sits on the widgets that show tooltips, not on the application: an application filter
runs Python for every event of every object, and each call must win the GIL from a training
worker. While ResNet-50 opened, the GUI thread spent a quarter of its time in that filter, mostly
waiting for the GIL (py-spy, native stacks), and the window stalled 140-170 ms instead of 70-110.
"""
from __future__ import annotations

import html
from typing import Optional

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (QAbstractButton, QAbstractItemView, QAbstractSpinBox, QApplication,
                               QComboBox, QGroupBox, QHeaderView, QLineEdit, QMenu, QSlider,
                               QTabBar, QToolTip, QWidget)

WRAP_OVER = 70   # characters: shorter tooltips stay one line


def wrapped(text: str) -> str:
    """``text`` as a rich-text paragraph Qt word-wraps (line breaks kept); rich text unchanged."""
    if not text or len(text) <= WRAP_OVER or text.lstrip().startswith("<"):
        return text
    return "<p style='white-space:pre-wrap'>" + html.escape(text) + "</p>"


class TooltipWrapper(QObject):
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        return show_wrapped(obj, event)


def show_wrapped(obj: QObject, event: QEvent) -> bool:
    """Shows a long plain tooltip as rich text (True: handled); any other event goes on (False)."""
    if event.type() != QEvent.Type.ToolTip or not isinstance(obj, QWidget):
        return False
    text = tooltip_at(obj, event.pos())
    if not text or wrapped(text) == text:
        return False   # Qt shows it as usual
    QToolTip.showText(event.globalPos(), wrapped(text), obj)
    return True


def tooltip_at(widget: QWidget, pos) -> Optional[str]:
    """The tooltip Qt would show for ``widget`` at ``pos``."""
    if isinstance(widget, QMenu):
        action = widget.actionAt(pos)
        if action is None or not widget.toolTipsVisible():
            return None
        return action.toolTip()
    view = widget.parent()
    if isinstance(view, QHeaderView) or isinstance(widget, QHeaderView):
        header = widget if isinstance(widget, QHeaderView) else view
        section = header.logicalIndexAt(pos)
        if section < 0 or header.model() is None:
            return None
        return header.model().headerData(section, header.orientation(),
                                         Qt.ItemDataRole.ToolTipRole)
    if isinstance(view, QAbstractItemView) and widget is view.viewport():
        index = view.indexAt(pos)
        return index.data(Qt.ItemDataRole.ToolTipRole) if index.isValid() else None
    return widget.toolTip()


# widgets whose tooltips are set or changed while the window runs, or come from their items
# (labels are left out unless they have a tooltip when installed: some repaint with every
# progress report)
SHOWS_TOOLTIPS = (QAbstractButton, QAbstractSpinBox, QComboBox, QGroupBox, QHeaderView, QLineEdit,
                  QMenu, QSlider, QTabBar)
_INSTALLED = "prunelab_tooltips"


def shows_tooltips(widget: QWidget) -> bool:
    """Whether a tooltip can appear on ``widget``: it has one now, it is a control whose tooltip
    may change, a menu (its actions' tooltips) or an item view's viewport (its items')."""
    if widget.toolTip() or isinstance(widget, SHOWS_TOOLTIPS):
        return True
    view = widget.parent()
    return isinstance(view, QAbstractItemView) and widget is view.viewport()


def install(root: QWidget) -> None:
    """Wraps the long tooltips of ``root`` and the widgets in it, once each; call again after
    adding widgets (each dialog calls it when built)."""
    app = QApplication.instance()
    if app is None:
        return
    wrapper = app.findChild(TooltipWrapper, _INSTALLED)
    if wrapper is None:
        wrapper = TooltipWrapper(app)
        wrapper.setObjectName(_INSTALLED)
    widgets = [root, *root.findChildren(QWidget)]
    # a combo box's list is a popup window of its own, made when first asked for
    widgets += [combo.view().viewport() for combo in widgets if isinstance(combo, QComboBox)]
    for widget in widgets:
        if widget.property(_INSTALLED) is None and shows_tooltips(widget):
            widget.installEventFilter(wrapper)
            widget.setProperty(_INSTALLED, True)
