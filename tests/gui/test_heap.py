"""gui.heap: long-lived objects are frozen out of the collector's walk; garbage is not frozen."""
import gc
import weakref

from gui.heap import settle_heap


class Node:
    pass


def test_settle_heap_collects_garbage_then_freezes_the_living():
    cycle = Node()
    cycle.self = cycle          # unreachable once deleted: only the cycle collector frees it
    gone = weakref.ref(cycle)
    del cycle
    alive = Node()
    try:
        settle_heap()
        assert gone() is None                   # collected before the freeze, not kept forever
        assert gc.get_freeze_count() > 0
        assert not any(o is alive for o in gc.get_objects())   # frozen: out of every generation
    finally:
        gc.unfreeze()


def test_opening_a_model_settles_the_heap(demo_window):
    # the demo opened in the fixture: what it loaded is frozen, so a collection during a run
    # walks only what the run makes (see the heartbeat test)
    assert gc.get_freeze_count() > 0
