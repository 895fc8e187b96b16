"""The ``slurm_cluster`` pytest fixture: one live single-node cluster per test session.

Import it into a test module (``from slurm.fixture import slurm_cluster``). Tests that use
it are skipped, with the reason, where SLURM or munge is not installed (``make
system-deps`` installs them when run as root) or where the cluster does not come up.
"""

from __future__ import annotations

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
        shutil.rmtree(root, ignore_errors=True)
