"""Tooltips that wrap. Qt shows a plain-text tooltip as one line, however long (some of PruneLab's
are a paragraph: 1,100 px wide); a rich-text tooltip is word-wrapped. One application event
filter shows every long plain tooltip (widgets, actions in menus, item views and their headers)
as rich text, so the texts themselves stay plain wherever they are set."""
from __future__ import annotations

import html
from typing import Optional

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractItemView, QApplication, QHeaderView, QMenu, QToolTip, QWidget

WRAP_OVER = 70   # characters: shorter tooltips stay one line


def wrapped(text: str) -> str:
    """``text`` as a rich-text paragraph Qt word-wraps (line breaks kept); rich text unchanged."""
    if not text or len(text) <= WRAP_OVER or text.lstrip().startswith("<"):
        return text
    return "<p style='white-space:pre-wrap'>" + html.escape(text) + "</p>"


class TooltipWrapper(QObject):
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
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


def install(app: Optional[QApplication] = None) -> None:
    """Once per application."""
    app = app or QApplication.instance()
    if app is not None and app.property("prunelab_tooltips") is None:
        wrapper = TooltipWrapper(app)
        app.installEventFilter(wrapper)
        app.setProperty("prunelab_tooltips", True)
