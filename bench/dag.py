"""Benchmark: how long ``snakemake -n`` takes to plan the screening stage for 1e3, 1e4 and
1e5 candidates, and how that grows with ``screen.chunks``.

Modes (``--mode``, default ``auto``: the first that applies):

real
    ``workflow/rules/screen.smk`` exists with rule ``screen_chunk``: a copy of the
    workflow (Snakefile, workflow/, config/, resources/, profiles/default/) is planned as it is.
proposed
    The rules are not installed yet: the copy gets ``bench/screen_rules.smk.txt`` as
    ``workflow/rules/screen.smk``, its include line, config block and schema (from the
    comments at the end of that file). Nothing in the repository is changed.
mimic
    A throwaway Snakefile with the same shape (split -> one job per chunk -> merge).

For each candidate count a structure table with that many rows is written where the rules
read it (``screen.candidates``: ``{bench: ...}``), a training table too, and ``snakemake -n
results/screen/bench/funnel.parquet`` is timed (best of ``--repeat``). The DAG's size depends on
``screen.chunks`` only; the runs use 1000 candidates per chunk (1, 10 and 100 chunks) and a
fixed ``--chunks`` for every count, and a sweep over chunk counts. ``split_s`` is the time
of :func:`topogen.screen.chunks.split_chunks` on the table (the split rule's own work).
Usage::

    .venv/bin/python bench/dag.py --json bench/out/dag.json
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RULES_TXT = ROOT / "bench" / "screen_rules.smk.txt"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
# The funnel of one screened set, "bench" (screen.candidates: {bench: CANDIDATES}).
TARGET = "results/screen/bench/funnel.parquet"
CANDIDATES = "results/generate/bench/candidates.parquet"

MIMIC = """
N = int(config["screen"]["chunks"])
CHUNKS = [f"{i:03d}" for i in range(N)]

wildcard_constraints:
    chunk=r"[0-9]+",

rule all:
    input: "results/screen/bench/funnel.parquet"

rule split_candidates:
    input: config["screen"]["candidates"]
    output: expand("results/screen/bench/chunks/{chunk}/candidates.parquet", chunk=CHUNKS)
    log: "results/logs/screen/bench/split_candidates.log"
    threads: 1
    shell: "touch {output:q}"

rule screen_chunk:
    input:
        candidates="results/screen/bench/chunks/{chunk}/candidates.parquet",
        training=config["screen"]["training"],
    output:
        structures="results/screen/bench/chunks/{chunk}/screened.parquet",
        funnel="results/screen/bench/chunks/{chunk}/funnel.parquet",
        dos="results/screen/bench/chunks/{chunk}/phonon_dos.npz",
    log: "results/logs/screen/bench/screen_chunk_{chunk}.log"
    threads: 1
    shell: "touch {output:q}"

rule merge_screen:
    input:
        funnel=expand("results/screen/bench/chunks/{chunk}/funnel.parquet", chunk=CHUNKS),
        structures=expand("results/screen/bench/chunks/{chunk}/screened.parquet", chunk=CHUNKS),
        dos=expand("results/screen/bench/chunks/{chunk}/phonon_dos.npz", chunk=CHUNKS),
    output:
        funnel="results/screen/bench/funnel.parquet",
        survivors="results/screen/bench/survivors.parquet",
        dos="results/screen/bench/phonon_dos.npz",
    log: "results/logs/screen/bench/merge_screen.log"
    threads: 1
    shell: "touch {output:q}"
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rules_installed() -> bool:
    path = ROOT / "workflow" / "rules" / "screen.smk"
    return path.exists() and "rule screen_chunk" in path.read_text(encoding="utf-8")


def _yaml_blocks(text: str) -> tuple[str, str]:
    """(config block, schema block) from the comments at the end of the rules file."""
    lines = text.splitlines()
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in lines:
        if line.startswith("# ----"):
            current = []
            blocks.append(current)
            continue
        if current is not None and line.startswith("# "):
            current.append(line[2:])
        elif current is not None and line.strip() == "#":
            current.append("")
    config = "\n".join(blocks[0]) + "\n"
    schema = "\n".join(line for line in blocks[1] if line.startswith("  ")) + "\n"
    return config, schema


def copy_workflow(dest: Path, install: bool) -> None:
    import yaml

    shutil.copy2(ROOT / "Snakefile", dest / "Snakefile")
    for sub in ("workflow", "config", "resources"):
        if (ROOT / sub).exists():
            shutil.copytree(ROOT / sub, dest / sub)
    if (ROOT / "profiles" / "default").exists():
        shutil.copytree(ROOT / "profiles" / "default", dest / "profiles" / "default")
    if not install:
        return
    text = RULES_TXT.read_text(encoding="utf-8")
    (dest / "workflow" / "rules" / "screen.smk").write_text(text, encoding="utf-8")
    snakefile = (dest / "Snakefile").read_text(encoding="utf-8")
    includes = list(re.finditer(r'^include: "workflow/rules/.*\.smk"\n', snakefile, re.M))
    if not includes:
        raise RuntimeError("Snakefile has no include lines to extend")
    at = includes[-1].end()
    snakefile = snakefile[:at] + 'include: "workflow/rules/screen.smk"\n' + snakefile[at:]
    (dest / "Snakefile").write_text(snakefile, encoding="utf-8")
    config_block, schema_block = _yaml_blocks(text)
    cfg_path = dest / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    cfg.update(yaml.safe_load(config_block))
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    schema_path = dest / "workflow" / "schemas" / "config.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text(encoding="utf-8"))
    schema["properties"].update(yaml.safe_load(schema_block))
    schema.setdefault("required", []).append("screen")
    schema_path.write_text(yaml.safe_dump(schema, sort_keys=False), encoding="utf-8")


def set_chunks(dest: Path, mode: str, chunks: int) -> dict[str, Any]:
    import yaml

    if mode == "mimic":
        screen = {
            "candidates": CANDIDATES,
            "training": "results/data/structures.parquet",
            "chunks": chunks,
        }
        (dest / "config.yaml").write_text(yaml.safe_dump({"screen": screen}), encoding="utf-8")
        return screen
    cfg_path = dest / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    cfg["screen"]["chunks"] = chunks
    cfg["screen"]["candidates"] = {"bench": CANDIDATES}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return {**cfg["screen"], "candidates": CANDIDATES}


def write_candidates(path: Path, n: int) -> float:
    """A structure table of n generated MoS2-like candidates; returns split_chunks' time on
    it with 100 chunks."""
    import pandas as pd

    from topogen.data import prototypes as P
    from topogen.io.tables import Record as Rec
    from topogen.io.tables import records_to_frame, write_table
    from topogen.screen.chunks import split_chunks

    seeds = [
        P.mx2_2h("Mo", "S"),
        P.mx2_1t("W", "Se"),
        P.honeycomb("C"),
        P.honeycomb("B", "N"),
        P.honeycomb("Bi"),
    ]
    base = records_to_frame([Rec(f"s{k}", "gen", s) for k, s in enumerate(seeds)])
    rows = base.iloc[[k % len(base) for k in range(n)]].reset_index(drop=True)
    rows["id"] = pd.array([f"cand-{k:06d}" for k in range(n)], dtype="string")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(rows, path)
    t0 = time.perf_counter()
    split_chunks(rows, 100)
    return time.perf_counter() - t0


def dry_run(dest: Path, mode: str, repeat: int) -> tuple[float, int]:
    cmd = [str(SNAKEMAKE), TARGET, "-n", "--cores", "1", "--directory", str(dest)]
    if mode == "mimic":
        cmd += ["--snakefile", str(dest / "Snakefile"), "--configfile", str(dest / "config.yaml")]
    else:
        cmd += ["--snakefile", str(dest / "Snakefile")]
    best = float("inf")
    jobs = -1
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, timeout=600)
        dt = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError(f"snakemake -n failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        best = min(best, dt)
        m = re.search(r"^total\s+(\d+)", out.stdout + out.stderr, re.M)
        jobs = int(m.group(1)) if m else -1
    return best, jobs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--mode", choices=("auto", "real", "proposed", "mimic"), default="auto")
    ap.add_argument(
        "--counts", type=int, nargs="+", default=[1000, 10000, 100000], help="candidates"
    )
    ap.add_argument("--per-chunk", type=int, default=1000, help="candidates per chunk")
    ap.add_argument("--chunks", type=int, default=64, help="fixed chunk count for every n")
    ap.add_argument("--sweep", type=int, nargs="+", default=[1, 10, 100, 1000])
    ap.add_argument("--repeat", type=int, default=2, help="best of this many dry runs")
    args = ap.parse_args(argv)

    mode = args.mode
    if mode == "auto":
        mode = "real" if rules_installed() else "proposed"
    with tempfile.TemporaryDirectory(prefix="topogen-dag-") as tmp:
        dest = Path(tmp)
        if mode in ("real", "proposed"):
            try:
                copy_workflow(dest, install=mode == "proposed")
                screen = set_chunks(dest, mode, 1)
            except Exception as exc:  # the workflow changed shape: fall back, say why
                log(f"{mode} mode unavailable ({type(exc).__name__}: {exc}); using mimic")
                shutil.rmtree(dest)
                dest.mkdir()
                mode = "mimic"
        if mode == "mimic":
            (dest / "Snakefile").write_text(MIMIC, encoding="utf-8")
            screen = set_chunks(dest, mode, 1)
        log(f"mode: {mode}")
        training = dest / screen["training"]
        training.parent.mkdir(parents=True, exist_ok=True)
        write_candidates(training, 5)
        runs, fixed, sweep = [], [], []
        for n in args.counts:
            split_s = write_candidates(dest / screen["candidates"], n)
            chunks = max(1, n // args.per_chunk)
            set_chunks(dest, mode, chunks)
            seconds, jobs = dry_run(dest, mode, args.repeat)
            runs.append({"candidates": n, "chunks": chunks, "jobs": jobs, "seconds": seconds,
                         "split_s": round(split_s, 3)})  # fmt: skip
            log(f"n={n}: {chunks} chunks, {jobs} jobs, snakemake -n {seconds:.2f} s, "
                f"split {split_s:.2f} s")  # fmt: skip
            set_chunks(dest, mode, args.chunks)
            seconds, jobs = dry_run(dest, mode, args.repeat)
            fixed.append({"candidates": n, "chunks": args.chunks, "jobs": jobs, "seconds": seconds})
            log(f"n={n}: {args.chunks} chunks, {jobs} jobs, snakemake -n {seconds:.2f} s")
        for chunks in args.sweep:
            set_chunks(dest, mode, chunks)
            seconds, jobs = dry_run(dest, mode, args.repeat)
            sweep.append({"chunks": chunks, "jobs": jobs, "seconds": seconds})
            log(f"sweep: {chunks} chunks, {jobs} jobs, snakemake -n {seconds:.2f} s")
    result = {
        "mode": mode,
        "target": TARGET,
        "per_chunk": args.per_chunk,
        "runs": runs,
        "fixed_chunks": fixed,
        "chunk_sweep": sweep,
        "max_seconds": max(r["seconds"] for r in runs + fixed),
        "under_15_s_at_1e5": all(r["seconds"] < 15 for r in runs + fixed),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(json.dumps({k: result[k] for k in ("mode", "max_seconds", "under_15_s_at_1e5")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
