"""The workflow on a real (single-node) SLURM cluster through snakemake-executor-plugin-slurm.

A small sub-DAG (import two demo files -> merge -> summary plot) is run with a cluster
profile (``slurm.cluster.write_profile``) against a live cluster (``slurm_cluster``,
skipped where SLURM is not installed). Checked: the jobs and their resources in SLURM's own
records, results equal to a local run, a retried failure, and recovery after ``scancel``.

Failures and hangs are injected without touching the rules: a ``topogen`` wrapper first on
PATH (which the batch jobs inherit) fails once, or hangs after its work, for one subcommand.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import BIN, copy_workflow, run
from slurm.cluster import Cluster, Job, write_profile

from topogen.io.tables import COLUMNS, read_table

pytestmark = pytest.mark.slow

DEMO_CONFIG = (
    "data={'merge':['import/demo'],'imports':{'demo':{'files':"
    "['resources/structures/hBN.cif','resources/structures/MoS2.cif'],'source':'demo'}}}"
)
TARGETS = ("results/data/structures.parquet", "results/report/structures.png")
RULES = ["import_structures", "merge_structures", "summarize_structures"]
# data -> encode (crystal images) -> a short training stage -> one screening chunk
SUB_DAG_TARGETS = (
    *TARGETS,
    "results/models/gan/stage1/model.ckpt",
    "results/screen/demo/chunks/000/funnel.parquet",
)
SUB_DAG_RULES = sorted(
    [*RULES, "encode_images", "train_gan_stage1", "split_candidates", "screen_chunk"]
)
RULE_RESOURCES = {"screen_chunk": (240, 4000)}  # its `resources:` (workflow/rules/screen.smk)
SUB_DAG_CONFIG = """
data:
  merge: [import/demo]
  imports:
    demo:
      files: [resources/structures/hBN.cif, resources/structures/MoS2.cif,
              resources/structures/honeycombs.extxyz]
      source: demo
encode: {images: {epochs: 2, held_out: 0.2}}
train: {gan: {stage1: {epochs: 2}}}
screen:
  candidates: {demo: results/data/structures.parquet}
  chunks: 1
  funnel: {phonons: false}
  band_gap_model: null   # the default's CGCNN and classifier: not in this sub-DAG
  topology: {model: null}
"""
RUNTIME_MIN, MEM_MB = 7, 1234  # unusual values, looked for in SLURM's records
TIMEOUT_S = 240


def topogen_wrapper(bin_dir: Path, *, fail_once: str = "", hang_after: str = "") -> Path:
    """A ``topogen`` in ``bin_dir`` that runs the real one, except for one subcommand.

    ``fail_once="data merge"``: the first call of ``topogen data merge`` exits 3 (a marker
    file remembers it). ``hang_after="data merge"``: the real command runs, then the wrapper
    touches ``hanging`` and sleeps, so the job can be cancelled with its outputs written.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "topogen"
    wrapper.write_text(
        f"""#!/bin/sh
key="$1 $2"
if [ "$key" = '{fail_once}' ] && [ ! -e '{bin_dir}/failed-once' ]; then
    : > '{bin_dir}/failed-once'
    echo "injected failure of topogen $key" >&2
    exit 3
fi
if [ "$key" = '{hang_after}' ]; then
    '{BIN / "topogen"}' "$@" || exit $?
    : > '{bin_dir}/hanging'
    exec sleep 600
fi
exec '{BIN / "topogen"}' "$@"
"""
    )
    wrapper.chmod(0o755)
    return bin_dir


def cluster_env(cluster: Cluster, wrapper_dir: Path | None = None) -> dict[str, str]:
    """The cluster's client env, with the venv (and a topogen wrapper) first on PATH."""
    first = [str(wrapper_dir)] if wrapper_dir else []
    return {**cluster.env, "PATH": os.pathsep.join([*first, str(BIN), cluster.env["PATH"]])}


def snakemake_args(
    profile: Path | None, prefix: str, *extra: str, targets: tuple[str, ...] = TARGETS
) -> list[str]:
    args = ["snakemake", *targets]
    if profile is not None:
        args += ["--profile", str(profile), "--slurm-jobname-prefix", prefix]
    if targets != TARGETS:  # the longer sub-DAG: its whole config is in SUB_DAG_CONFIG
        return [*args, *extra, "--configfile", "sub_dag.yaml"]
    return [*args, *extra, "--config", DEMO_CONFIG]  # --config last: it takes many values


def jobs_of(cluster: Cluster, prefix: str) -> list[Job]:
    return [j for j in cluster.jobs() if j.name.startswith(f"{prefix}_")]


def wait_for_completions(cluster: Cluster, jobs: list[Job], timeout: float = 30) -> list[Job]:
    """Jobs re-read until each has its jobcomp record (written as a job ends)."""
    ids = {j.id for j in jobs}
    deadline = time.monotonic() + timeout
    while True:
        fresh = [j for j in cluster.jobs() if j.id in ids]
        if all(j.completion for j in fresh) or time.monotonic() > deadline:
            return fresh
        time.sleep(0.5)


def outputs(workdir: Path) -> dict:
    """What the sub-DAG produced, without provenance (timestamps, hosts)."""
    table = read_table(workdir / TARGETS[0])
    return {
        "table": table[list(COLUMNS)].to_dict("records"),
        "quarantine": (workdir / "results/data/structures.parquet.quarantine.csv").read_text(),
        "summary": json.loads((workdir / "results/report/structures.json").read_text()),
        "png": (workdir / TARGETS[1]).read_bytes()[:8],
    }


def tail(res) -> str:
    return (res.stdout + res.stderr)[-4000:]


def test_cluster_profile_plans_the_workflow(repo_root, tmp_path):
    """profiles/slurm parses (anchors, expressions) and applies."""
    wf = copy_workflow(repo_root, tmp_path / "wf")
    res = run(
        ["snakemake", "-n", "--profile", "profiles/slurm", *TARGETS, "--config", DEMO_CONFIG],
        cwd=wf,
    )
    assert res.returncode == 0, tail(res)
    assert "Using profiles profiles/slurm and workflow specific profile profiles/default" in (
        res.stdout + res.stderr
    )
    assert "mem_mb=2000" in res.stdout and "runtime=30" in res.stdout  # the data family
    assert "cpus_per_task=1" in res.stdout  # `threads`, evaluated


@pytest.mark.parametrize(
    ("rule", "flags"),
    [
        ("train_gan_stage1", ["--gpus=1", "--cpus-per-gpu=8", "-t 720", "--mem 32000"]),
        ("dft_scf", ["--ntasks=32", "--cpus-per-task=1", "-t 1440"]),
        ("wannierize", ["--ntasks=8", "-t 240"]),
        ("screen_chunk", ["--ntasks=1", "--cpus-per-task=1", "--mem 16000", "-t 240"]),
        ("build_prototypes", ["--ntasks=1", "--cpus-per-task=2", "--mem 8000"]),
    ],
)
def test_cluster_profile_families_reach_sbatch(repo_root, rule, flags):
    """The plugin's own sbatch builder, fed a rule family's set-resources from profiles/slurm.

    Guards the plugin's quirks: cpus_per_task wins over cpus_per_gpu unless it is 0, and
    `gpu` (not `gpus`) is what becomes --gpus.
    """
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    profile = yaml.safe_load((repo_root / "profiles/slurm/config.yaml").read_text())
    job = SimpleNamespace(name=rule, threads=1, resources=Resources(profile["set-resources"][rule]))
    params = {
        "run_uuid": "uuid",
        "slurm_logfile": "log",
        "comment_str": f"rule_{rule}",
        "account": "",
        "partition": "",
        "workdir": "/work",
    }
    call = get_submit_command(job, params) + set_gres_string(job)
    for flag in flags:
        assert f" {flag}" in call, call
    if "--gpus=1" in flags:
        assert "--cpus-per-task" not in call, call


def sub_dag_outputs(workdir: Path) -> dict:
    """:func:`outputs` plus the crystal images, the GAN's per-epoch metrics and the
    screening chunk's verdicts (numbers as arrays, compared to a tolerance)."""
    from topogen.encode.store import load_encoded

    images = load_encoded(workdir / "results/encode/images.pt", "images")
    funnel = pd.read_parquet(workdir / "results/screen/demo/chunks/000/funnel.parquet")
    gan = pd.read_csv(workdir / "results/models/gan/stage1/metrics.csv")
    verdicts = [c for c in funnel.columns if funnel[c].dtype == object and "reason" not in c]
    return {
        **outputs(workdir),
        "image_ids": images["ids"],
        "images": images["tensors"]["images"].numpy(),
        "gan": gan[["epoch", "d_loss", "g_loss"]].to_numpy(),
        "verdicts": funnel[verdicts].to_dict("records"),
        "energies": funnel["energy_per_atom"].to_numpy(dtype=float),
    }


def test_sub_dag_runs_on_slurm_like_locally(slurm_cluster, repo_root, tmp_path):
    """data -> encode -> GAN Stage I -> a screening chunk, as SLURM jobs; same as locally."""
    wf = copy_workflow(repo_root, tmp_path / "slurm")
    (wf / "sub_dag.yaml").write_text(SUB_DAG_CONFIG)
    profile = write_profile(tmp_path / "profile", runtime_min=RUNTIME_MIN, mem_mb=MEM_MB)
    env = cluster_env(slurm_cluster)
    args = snakemake_args(profile, "test_a", targets=SUB_DAG_TARGETS)
    res = run(args, cwd=wf, env=env, timeout=3 * TIMEOUT_S)
    assert res.returncode == 0, tail(res)

    jobs = wait_for_completions(slurm_cluster, jobs_of(slurm_cluster, "test_a"))
    assert sorted(j.rule for j in jobs) == SUB_DAG_RULES, [(j.id, j.rule, j.state) for j in jobs]
    for job in jobs:
        assert job.state == "COMPLETED", job
        # the profile's default-resources (or the rule's own), as SLURM recorded them
        # (squeue and jobcomp)
        runtime, mem = RULE_RESOURCES.get(job.rule, (RUNTIME_MIN, MEM_MB))
        assert (job.time_limit_min, job.memory_mb, job.cpus) == (runtime, mem, 1), job
        assert job.completion["JobState"] == "COMPLETED", job.completion
        assert job.completion["TimeLimit"] == str(runtime), job.completion
        assert f"mem={mem}M" in job.completion["Tres"].split(","), job.completion
        assert job.completion["WorkDir"] == str(wf)

    # the reference: a local run of the same sub-DAG (run after, not alongside: on two
    # cores it slowed the SLURM jobs past the plugin's 12 s status check, costing 20 s)
    local = copy_workflow(repo_root, tmp_path / "local")
    (local / "sub_dag.yaml").write_text(SUB_DAG_CONFIG)
    args = snakemake_args(None, "", "--cores", "2", targets=SUB_DAG_TARGETS)
    res = run(args, cwd=local, timeout=3 * TIMEOUT_S)
    assert res.returncode == 0, tail(res)
    on_slurm, here = sub_dag_outputs(wf), sub_dag_outputs(local)
    assert {"hBN", "MoS2"} <= {r["id"] for r in on_slurm["table"]}
    for key in ("images", "gan", "energies"):  # same seeds, same numbers
        np.testing.assert_allclose(on_slurm.pop(key), here.pop(key), rtol=1e-5, atol=1e-6)
    assert on_slurm == here


def test_failed_job_is_retried(slurm_cluster, repo_root, tmp_path):
    wf = copy_workflow(repo_root, tmp_path / "wf")
    profile = write_profile(tmp_path / "profile", retries=1)
    wrapper = topogen_wrapper(tmp_path / "wrapper", fail_once="data merge")
    env = cluster_env(slurm_cluster, wrapper)

    res = run(snakemake_args(profile, "test_b"), cwd=wf, env=env, timeout=TIMEOUT_S)
    assert res.returncode == 0, tail(res)
    assert (wrapper / "failed-once").exists(), "the failure was not injected"

    jobs = wait_for_completions(slurm_cluster, jobs_of(slurm_cluster, "test_b"))
    merges = [j for j in jobs if j.rule == "merge_structures"]
    assert [j.state for j in merges] == ["FAILED", "COMPLETED"], merges
    assert merges[0].completion.get("ExitCode", "0:0") != "0:0", merges[0].completion
    assert sorted(j.rule for j in jobs) == sorted([*RULES, "merge_structures"])
    assert {r["id"] for r in outputs(wf)["table"]} == {"hBN", "MoS2"}


def test_cancelled_job_fails_the_run_and_rerun_completes(
    slurm_cluster,
    repo_root,
    tmp_path,
):
    wf = copy_workflow(repo_root, tmp_path / "wf")
    profile = write_profile(tmp_path / "profile", retries=0)
    wrapper = topogen_wrapper(tmp_path / "wrapper", hang_after="data merge")
    args = snakemake_args(profile, "test_c")
    proc = subprocess.Popen(
        [str(BIN / args[0]), *args[1:]],
        cwd=wf,
        env=cluster_env(slurm_cluster, wrapper),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S / 2
        while not (wrapper / "hanging").exists():
            assert proc.poll() is None, proc.communicate()[0][-4000:]
            assert time.monotonic() < deadline, "the merge job never reached its hang"
            time.sleep(0.5)
        (merge,) = [j for j in jobs_of(slurm_cluster, "test_c") if j.rule == "merge_structures"]
        slurm_cluster.run("scancel", merge.id)
        out, _ = proc.communicate(timeout=TIMEOUT_S / 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, out[-4000:]
    assert "CANCELLED" in out, out[-4000:]
    assert not (wf / "results/report/structures.png").exists()
    imported = wf / "results/data/import/demo.parquet"
    imported_mtime = imported.stat().st_mtime_ns
    states = {j.rule: j.state for j in jobs_of(slurm_cluster, "test_c")}
    assert states == {"import_structures": "COMPLETED", "merge_structures": "CANCELLED"}

    # the profile sets rerun-incomplete; the finished import is not redone
    res = run(
        snakemake_args(profile, "test_c2"),
        cwd=wf,
        env=cluster_env(slurm_cluster),
        timeout=TIMEOUT_S,
    )
    assert res.returncode == 0, tail(res)
    assert sorted(j.rule for j in jobs_of(slurm_cluster, "test_c2")) == RULES[1:]
    assert imported.stat().st_mtime_ns == imported_mtime
    assert {r["id"] for r in outputs(wf)["table"]} == {"hBN", "MoS2"}
    assert (
        "Nothing to be done"
        in run(snakemake_args(None, "", "-n"), cwd=wf, env=cluster_env(slurm_cluster)).stdout
    )
