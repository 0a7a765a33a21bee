"""The worker's answers are taken in on the GUI thread, in order, one per turn of the event loop."""
import threading
import time

from PySide6.QtCore import QObject, QTimer, Signal

from gui.window.pacing import AnswerPacer

JOB_S = 0.03          # each answer's handler: longer than the heartbeat's interval
HEARTBEAT_MS = 10


class Sender(QObject):
    answer = Signal(object)


def test_answers_run_on_the_gui_thread_in_order_with_the_event_loop_between_them(qtbot):
    root = QObject()
    pacer = AnswerPacer(root)
    sender = Sender()
    events: list = []

    def handler(i):
        events.append(("job", i, threading.current_thread() is threading.main_thread()))
        time.sleep(JOB_S)

    pacer.connect(sender.answer, handler)
    heartbeat = QTimer()
    heartbeat.setInterval(HEARTBEAT_MS)
    heartbeat.timeout.connect(lambda: events.append(("beat",)))
    heartbeat.start()
    # a burst from another thread, as the worker sends when an operation ends
    burst = threading.Thread(target=lambda: [sender.answer.emit(i) for i in range(6)])
    burst.start()
    burst.join()
    qtbot.waitUntil(lambda: sum(e[0] == "job" for e in events) == 6, timeout=5000)
    heartbeat.stop()
    jobs = [e for e in events if e[0] == "job"]
    assert [j[1] for j in jobs] == list(range(6))            # order kept
    assert all(j[2] for j in jobs)                            # on the GUI thread
    kinds = [e[0] for e in events[events.index(jobs[0]):]]
    # the heartbeat, due during each job, fires before the next one
    assert all(not (a == "job" and b == "job") for a, b in zip(kinds, kinds[1:])), kinds
    assert pacer.pending == 0


def test_a_handler_can_split_its_views_into_turns_that_come_before_later_answers(qtbot):
    root = QObject()   # the pacer's parent, kept alive for the test
    pacer = AnswerPacer(root)
    order: list = []

    def opened():
        order.append("opened")
        pacer.next_up(lambda: order.append("tree"), lambda: order.append("charts"))
    pacer.add(opened, ())
    pacer.add(lambda: order.append("finished"), ())
    qtbot.waitUntil(lambda: pacer.pending == 0 and len(order) == 4, timeout=2000)
    assert order == ["opened", "tree", "charts", "finished"]
