"""PruneLab: start the desktop app, or run a recipe headless with --headless."""
import sys

EXIT_INTERRUPTED = 130


def main() -> int:
    argv = sys.argv[1:]
    if "--headless" in argv:
        argv.remove("--headless")
        from engine.cli import main as cli_main
        return cli_main(argv)
    from gui.app import main as gui_main
    return gui_main(argv)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Ctrl-C before the CLI installs its own handler (torch and Qt take a second or more to
        # import): one line, the shell's exit code for SIGINT, no traceback.
        print("prunelab: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
