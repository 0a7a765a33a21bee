"""A palette-aware plot theme: every pyqtgraph plot takes its background and its axes' and titles'
colour from the window's QPalette, so the plots follow a dark system theme (and back) instead of
staying white. The window re-applies it on QEvent.PaletteChange."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QWidget


def plot_colours(palette: QPalette) -> tuple[QColor, QColor]:
    """(background, foreground) of the plots: the palette's Base and Text roles."""
    return palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)


def is_dark(palette: QPalette) -> bool:
    return plot_colours(palette)[0].lightness() < 128


def apply_plot_theme(root: QWidget) -> tuple[QColor, QColor]:
    """Recolours every plot under ``root`` and makes the colours pyqtgraph's default for plots
    created later (the histograms' small multiples are rebuilt for each model)."""
    background, foreground = plot_colours(root.palette())
    pg.setConfigOptions(background=background, foreground=foreground)
    for view in root.findChildren(pg.GraphicsView):
        view.setBackground(background)
        scene = view.scene()
        if scene is None:
            continue
        for item in scene.items():
            if isinstance(item, pg.AxisItem):
                item.setPen(foreground)
                item.setTextPen(foreground)
            elif isinstance(item, pg.PlotItem):
                item.titleLabel.setAttr("color", foreground)
                item.titleLabel.setText(item.titleLabel.text)
            elif isinstance(item, pg.LegendItem):
                item.setLabelTextColor(foreground)
    return background, foreground
