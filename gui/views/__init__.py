"""One widget per central tab. Each takes plain data (snapshots, metrics) and redraws by calling
``setData`` on plot items it created once, so live updates stay cheap."""
import pyqtgraph as pg

# Light charts read better in screenshots and print; images are row-major like numpy.
pg.setConfigOptions(background="w", foreground="k", antialias=True, imageAxisOrder="row-major")

ORIGINAL_COLOR = (150, 150, 150)
CURRENT_COLOR = (31, 119, 180)
ACCENT_COLOR = (214, 39, 40)


def shape_text(shape) -> str:
    """A tensor shape as the views print it: 16×6×5×5."""
    return "×".join(map(str, shape))
