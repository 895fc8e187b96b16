"""The ``slurm_cluster`` pytest fixture: one live single-node cluster per test session.

Load it with ``pytest_plugins = ["slurm.fixture"]`` (in a test module or tests/conftest.py).
Tests using it are skipped, with the reason, where SLURM or munge is not installed (``make
system-deps`` installs them when run as root) or where the cluster does not come up.
Set ``TOPOGEN_KEEP_SLURM=1`` to keep the cluster's directory (config, daemon logs, the
jobcomp file) after the session; its path is printed with ``pytest -s``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from slurm.cluster import Cluster, ClusterUnavailable, missing_programs, start, stop

START_TIMEOUT_S = 60


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    missing = missing_programs()
    if missing:
        pytest.skip(
            f"SLURM/munge not installed (missing: {', '.join(missing)}); "
            "`make system-deps` as root installs slurm-wlm and munge"
        )
    # a short path of its own: munge and slurmd put unix sockets in it (108-byte limit)
    root = tempfile.mkdtemp(prefix="topogen-slurm-")
    try:
        cluster = start(root, timeout=START_TIMEOUT_S)
    except ClusterUnavailable as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"the single-node SLURM cluster did not come up: {exc}")
    try:
        yield cluster
    finally:
        stop(root)
        if os.environ.get("TOPOGEN_KEEP_SLURM"):
            print(f"SLURM test cluster directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
