"""PruneLab engine: plain PyTorch, no Qt. Used by the desktop app and the headless CLI."""
