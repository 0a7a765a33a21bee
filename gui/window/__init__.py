"""The main window's parts, one file per concern (actions, files, runs, view refresh); gui.main_window
assembles them into one QMainWindow."""
