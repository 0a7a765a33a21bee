"""PruneLab's PySide6 desktop app. Thin: every computation happens in ``engine`` on the worker thread."""
