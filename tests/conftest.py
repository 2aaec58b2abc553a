"""Shared fixtures. Tests that read the real OPGs in ../shared skip when the folder is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]
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
