"""Where PruneLab's own files are: in a checkout, or inside an installed wheel.

A checkout keeps the demo data and the ready-made recipes in top-level ``resources/`` and
``recipes/``; the wheel carries the same files as ``engine/resources`` and ``engine/recipes``
(see setup.py), so an installed PruneLab finds them wherever it is started from.
"""
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent        # the checkout (when running from one)
# An installed wheel has the bundled folders inside the package; a checkout (or an editable
# install of one) does not, and uses its top-level folders.
INSTALLED = (PACKAGE / "resources").is_dir()
RESOURCES = PACKAGE / "resources" if INSTALLED else ROOT / "resources"
RECIPES = PACKAGE / "recipes" if INSTALLED else ROOT / "recipes"


def output_base(recipe_folder: Path) -> Path:
    """The folder a recipe's relative output paths (``export.path``) are resolved against.

    Normally the recipe's own folder, so recipes travel with their outputs. A recipe shipped
    inside the installed package would write into site-packages (often read-only, and lost on
    upgrade), so its outputs go where the checkout's would, relative to the current folder
    instead: ``../out/x.pt`` becomes ``./out/x.pt``.
    """
    recipe_folder = Path(recipe_folder).resolve()
    if INSTALLED and recipe_folder == RECIPES:
        return Path.cwd() / RECIPES.name
    return recipe_folder
