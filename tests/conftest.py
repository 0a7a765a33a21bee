import atexit
import os
import shutil
import tempfile

# Qt must never need a display in tests; set before any QApplication exists.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Tests must never touch the user's real settings (recent files, last folder, window layout): the
# home and config folders point into a throw-away folder before Qt reads them, and Qt's test mode
# moves its standard locations under it too. A QSettings made anywhere in the suite lands there.
TEST_HOME = tempfile.mkdtemp(prefix="prunelab-test-home-")
atexit.register(shutil.rmtree, TEST_HOME, True)   # gone with the run, like pytest's tmp_path
os.environ["HOME"] = TEST_HOME
os.environ["XDG_CONFIG_HOME"] = os.path.join(TEST_HOME, ".config")
os.environ["XDG_DATA_HOME"] = os.path.join(TEST_HOME, ".local", "share")

from PySide6.QtCore import QStandardPaths  # noqa: E402  (after the environment is set)

QStandardPaths.setTestModeEnabled(True)

import pytest
import torch
from torch.utils.data import TensorDataset

from engine.data.sources import DataBundle, hold_out_validation
from engine.models.lenet import LeNet

# The suite's models are tiny: one intra-op thread is as fast, and it keeps timings steady when the
# machine (2 cores in CI) is busy with anything else, where torch's thread pool thrashes.
torch.set_num_threads(1)


@pytest.fixture
def lenet():
    torch.manual_seed(0)
    return LeNet().eval()


@pytest.fixture
def tiny_data():
    """A learnable 10-class problem on 1x28x28 inputs: the class decides which patch is bright."""
    g = torch.Generator().manual_seed(0)

    def make(n):
        y = torch.randint(0, 10, (n,), generator=g)
        x = torch.randn(n, 1, 28, 28, generator=g) * 0.3
        for i, label in enumerate(y.tolist()):
            r, c = divmod(label, 5)
            x[i, 0, 4 + r * 10:4 + r * 10 + 8, 1 + c * 5:1 + c * 5 + 4] += 2.0
        return TensorDataset(x, y)

    bundle = DataBundle(make(256), make(128), 10, (1, 28, 28), "synthetic patches")
    hold_out_validation(bundle, 0.25)   # as load_data does: decisions on val, test only reported
    return bundle
