"""PruneLab: start the desktop app, or run a recipe headless with --headless."""
import sys


def main() -> int:
    argv = sys.argv[1:]
    if "--headless" in argv:
        argv.remove("--headless")
        from engine.cli import main as cli_main
        return cli_main(argv)
    from gui.app import main as gui_main
    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main())
