"""What the user reads when something fails: one line, at most 300 characters, no traceback.

The CLI prints it after ``prunelab:``, the window shows it in a dialog (its log gets the traceback).
Exception texts from torch or PIL can run to pages; their first line names what matters (the file,
the key, the shape), so that is what is kept.
"""
from __future__ import annotations

import re

# PIL names the file it cannot read as "<_io.BufferedReader name='/path/x.png'>": keep the path
_FILE_OBJECT = re.compile(r"<_io\.\w+ name=('[^']*'|\"[^\"]*\")>")

MAX_MESSAGE_CHARS = 300


def one_line(what: BaseException | str, limit: int = MAX_MESSAGE_CHARS) -> str:
    text = what if isinstance(what, str) else (str(what).strip() or type(what).__name__)
    if isinstance(what, KeyError) and text.startswith(("'", '"')):
        text = f"missing key {text}"   # str(KeyError('x')) is just "'x'"
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), text.strip())
    line = _FILE_OBJECT.sub(r"\1", line)
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"
