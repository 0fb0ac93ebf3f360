"""Fixtures shared by every test package: the shared datasets and free loopback ports."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TAMO_DATASETS", REPO.parent / "shared" / "datasets"))

# Tests never write to the user's data directory (the parsed-dataset cache, the default store):
# each test process gets its own, removed when it exits. Tests that need their own set it again.
if "TAMO_DATA_DIR" not in os.environ:
    _DATA_DIR = tempfile.mkdtemp(prefix="tamo-test-data-")
    os.environ["TAMO_DATA_DIR"] = _DATA_DIR
    atexit.register(shutil.rmtree, _DATA_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """``../shared/datasets``; tests that need it skip with a clear message when it is absent."""
    if not (DATASETS / "README.md").exists():
        pytest.skip(f"labelled datasets not found at {DATASETS} (set TAMO_DATASETS)")
    return DATASETS


@pytest.fixture(scope="session")
def nezha_root(datasets_root: Path) -> Path:
    return datasets_root / "nezha"


@pytest.fixture(scope="session")
def sockshop_root(datasets_root: Path) -> Path:
    return datasets_root / "sockshop-rcd"


def free_port() -> int:
    """A free TCP port on loopback (tests never bind anything but 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def loopback_port() -> int:
    return free_port()
