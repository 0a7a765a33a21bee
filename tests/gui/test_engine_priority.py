"""The engine's thread, and the torch threads it starts, run below the window's CPU priority."""
import os
import sys
import threading
from pathlib import Path

import pytest
import torch

from gui.worker import ENGINE_NICE, lower_engine_thread_priority

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="per-thread nice levels are Linux's")


def _nice_by_thread() -> dict[int, tuple[str, int]]:
    """Every thread of this process: native id -> (name, nice), from /proc."""
    out = {}
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:   # a thread that ended while listing
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        out[int(stat.parent.name)] = (name, int(text[text.rindex(")") + 2:].split()[16]))
    return out


def test_the_window_runs_its_engine_thread_below_its_own_priority(demo_window):
    threads = _nice_by_thread()
    engine = [nice for name, nice in threads.values() if name == "prunelab-engine"]
    gui_nice = threads[threading.get_native_id()][1]
    assert engine == [min(19, gui_nice + ENGINE_NICE)]
    assert gui_nice == os.getpriority(os.PRIO_PROCESS, 0)   # the window's own thread untouched


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs a second core for a torch helper")
def test_torch_threads_started_from_the_lowered_thread_inherit_its_priority():
    before = set(_nice_by_thread())
    base = os.getpriority(os.PRIO_PROCESS, 0)
    seen: dict = {}

    def engine_like() -> None:
        seen["lowered"] = lower_engine_thread_priority()
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            a = torch.randn(512, 512)
            for _ in range(20):   # a parallel op: torch starts this thread's OpenMP helper
                a = torch.tanh(a @ a)
            seen["now"] = _nice_by_thread()   # while this thread (and its helpers) still exist
        finally:
            torch.set_num_threads(threads)

    worker = threading.Thread(target=engine_like)
    worker.start()
    worker.join()
    assert seen["lowered"]
    new = {tid: nice for tid, (_name, nice) in seen["now"].items() if tid not in before}
    lowered = min(19, base + ENGINE_NICE)
    assert list(new.values()).count(lowered) >= 2, new   # the thread and at least one helper
    assert set(new.values()) == {lowered}, new
