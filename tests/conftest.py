"""Shared fixtures. Tests that read the real OPGs in ../shared skip when the folder is absent."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]


def _starts_dvc(args) -> bool:
    """Whether a command line runs DVC: `dvc ...`, `python -m dvc ...` or `make demo` (`dvc repro`)."""
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    words = [os.fsdecode(a) for a in argv]
    if len(words) == 1:   # a shell command line
        words = words[0].split()
    if not words:
        return False
    name = Path(words[0]).name
    return name == "dvc" or (name.startswith("python") and words[1:3] == ["-m", "dvc"]) or (
        name == "make" and "demo" in words[1:])


def pytest_configure(config):
    """`make test-fast` (``-m 'not slow'``) starts no DVC: a test that does must be marked ``slow``.
    In such a run, starting one fails the test that tries, naming it."""
    if "not slow" not in (config.getoption("markexpr", "") or ""):
        return
    real = subprocess.Popen.__init__

    def init(self, args, *a, **kw):
        if _starts_dvc(args):
            raise AssertionError(f"a test not marked slow runs DVC ({args!r}): mark it @pytest.mark.slow")
        real(self, args, *a, **kw)

    subprocess.Popen.__init__ = init
    config.add_cleanup(lambda: setattr(subprocess.Popen, "__init__", real))
SHARED_OPG = REPO.parent / "shared" / "data" / "opg-dev"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def opg_dev() -> Path:
    """../shared/data/opg-dev (51 real OPGs, 21 annotated): licence-restricted, read-only."""
    if not (SHARED_OPG / "images").is_dir():
        pytest.skip("../shared/data/opg-dev is absent (fresh clone): real-OPG test skipped")
    return SHARED_OPG


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small networks on a shared 2-core machine: two torch threads run far slower than one
    (spinning workers). Tests that train or score with torch use it (pytestmark)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
