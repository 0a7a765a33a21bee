"""Starts the PruneLab window: ``python main.py`` (the demo), ``python main.py RECIPE.json`` or
``python main.py CHECKPOINT.pt`` (opened like a dropped file)."""
from __future__ import annotations

import argparse
import sys
from typing import Optional


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python main.py",
                                     description="PruneLab: prune PyTorch models and see what it does. "
                                                 "Use --headless RECIPE.json for the command line.")
    parser.add_argument("file", nargs="?", help="a recipe (.json) or checkpoint to open instead of "
                                                "the demo")
    parser.add_argument("--demo", action="store_true",
                        help="open the built-in LeNet and digits (the default)")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args, qt_args = build_parser().parse_known_args(argv)
    from PySide6.QtWidgets import QApplication
    from gui.errors import install_last_resort_handler
    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    app.setApplicationName("PruneLab")
    app.setOrganizationName("PruneLab")
    window = MainWindow()
    install_last_resort_handler(window)
    window.show()
    if args.file and not args.demo:
        window.open_path(args.file)
    else:
        window.open_demo()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
