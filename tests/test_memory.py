"""engine.memory: after training, the free pages of malloc's heaps go back to the system."""
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from engine import memory


def test_elsewhere_it_does_nothing(monkeypatch):
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.release_free_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc's malloc only")
def test_memory_freed_after_training_leaves_the_process():
    """In a fresh process: four resnet18 training steps on a worker thread, then the memory the
    process still holds. glibc keeps the freed activations in its heaps (some 200 MB here);
    release_free_memory() hands them back."""
    script = """
import sys, threading, torch, torchvision
from engine.memory import release_free_memory
torch.manual_seed(0)
torch.set_num_threads(2)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
def train():
    m = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(16, 3, 96, 96), torch.randint(0, 10, (16,))
    for _ in range(4):
        opt.zero_grad(); torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step()
worker = threading.Thread(target=train)
base = rss(); worker.start(); worker.join()
held = rss() - base
assert release_free_memory()
print(held, rss() - base)
"""
    root = str(Path(memory.__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=root).stdout.split()
    held, released = int(out[0]), int(out[1])
    assert held > 100, (held, released)     # the freed activations stay resident until released
    assert released < held / 3, (held, released)
