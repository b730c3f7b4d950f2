import os

# Qt must run headless in tests; set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
# The studio autosaves projects under DBD_STUDIO_HOME; tests must never write into the user's folders.
import tempfile  # noqa: E402

os.environ["DBD_STUDIO_HOME"] = tempfile.mkdtemp(prefix="dbd-studio-test-home-")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Tests share a 2-core machine: keep each process to few threads so suites stay predictable.
torch.set_num_threads(2)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def chelsea():
    from skimage import data

    return data.chelsea()


@pytest.fixture(scope="session")
def coffee():
    from skimage import data

    return data.coffee()

