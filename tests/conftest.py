"""Shared fixtures: where the read-only reference material and real datasets live.

``LGMSNET_SHARED`` points at the shared folder (default: ``<repo>/../shared``); ``LGMSNET_SHARED_DATA`` at its
datasets (default: ``$LGMSNET_SHARED/data``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Real servers on loopback (SeaweedFS S3, mlflow server) as session fixtures.
pytest_plugins = ["tests.s3server"]

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LGMSNET_SHARED", REPO.parent / "shared"))
SHARED_DATA = Path(os.environ.get("LGMSNET_SHARED_DATA", SHARED / "data"))

# Two cores on CI machines: keep each test process from oversubscribing them.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    ref = SHARED / "reference"
    if not (ref / "lgmsnet_official_io.pt").is_file():
        pytest.fail(f"reference artefacts missing under {ref}; set LGMSNET_SHARED to the shared folder")
    return ref


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA
