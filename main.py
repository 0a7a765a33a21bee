"""PruneLab: start the desktop app, or run a recipe headless with --headless.

Installed from the wheel, the same entry point is the ``prunelab`` command."""
import sys

from gui.launcher import main

if __name__ == "__main__":
    sys.exit(main())
