"""The ``prunelab`` command (and ``python main.py``): the desktop app, or with ``--headless`` the
command line, which never imports Qt (this package's ``__init__`` imports nothing)."""
import sys
from typing import Optional


EXIT_INTERRUPTED = 130


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if "--headless" in argv:
            argv.remove("--headless")
            from engine.cli import main as cli_main
            return cli_main(argv)
        from gui.app import main as gui_main
        return gui_main(argv)
    except KeyboardInterrupt:
        # Ctrl-C before the CLI installs its own handler (torch and Qt take a second or more to
        # import): one line, the shell's exit code for SIGINT, no traceback.
        print("prunelab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
