"""Control experiment: does Stage III's oracle reward raise the share of stable (and
insulating) samples, or would the generator get there by training on without it?

The same Stage II generator is continued for the same number of Stage III epochs, with the
same seed (same initial oracle batch, same noise, same batches), in two arms:

* ``reward``: the Stage III of the workflow (adversarial term + the reward model's term);
* ``control``: ``reward_weight`` 0 (the adversarial term only). The oracle still scores it
  every epoch and its reward model is still fit and checked, so the curves compare.

Each arm is :func:`topogen.models.gan3.train.train_stage` (the code `topogen train gan --stage
3` runs): the oracle scores ``--oracle-samples`` samples before the first epoch and after each
epoch; the stage's output (its best epoch) is re-scored on ``--rescore-samples`` fresh
samples. Reported per arm: per-epoch stable / insulating / both fractions with 90% Wilson
intervals, and the re-scored fractions of the stage's model (the comparison of record) and of
its last epoch (free of the best-epoch selection; same fresh samples); the insulating and both
fractions need the CGCNN band-gap model (skipped with ``--band-gap-model none``). With
``--topology-model`` (a CrystalBERT topology classifier) both arms have it as a third oracle
and report the topological and "all" fractions; the reward arm climbs its head too. The arms
run side by side in ``--jobs`` processes of ``--threads / --jobs`` torch threads (on 2 shared
cores one thread per process is much faster than two threads in one). Oracle
options not given here come from the config's ``train.gan.stage3`` block (``--config``), the
rest from the library's defaults. Writes ``<out>/stage3.json`` and ``<out>/stage3.png`` and
prints a table; an interrupted run resumes (each arm's work directory keeps its checkpoints).

Inputs default to what ``make demo`` leaves in ``results/``. Usage:

    python bench/stage3.py              # the full run: 50 epochs x 32 samples, < 2 h on 2 cores
    python bench/stage3.py --epochs 3 --oracle-samples 8 --rescore-samples 32 --out /tmp/s3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from topogen.models.gan3.reward import HEADS

ARMS = {"reward": None, "control": 0.0}  # arm -> reward_weight (None: the settings')
VERDICTS = ("stable", "insulating", "both", "topological", "all")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stage3_options(config: Path | None) -> dict[str, Any]:
    """train.gan's shared options and its stage3 block from a workflow config (not paths)."""
    if config is None or not config.exists():
        return {}
    import yaml

    gan = (yaml.safe_load(config.read_text()).get("train") or {}).get("gan") or {}
    shared = {k: v for k, v in gan.items() if not k.startswith("stage") and k != "sample"}
    paths = ("band_gap_model", "topology_model")  # inputs: this script's flags
    return shared | {k: v for k, v in (gan.get("stage3") or {}).items() if k not in paths}


def settings_for(args: argparse.Namespace, reward_weight: float | None) -> Any:
    """GanSettings of an arm: config options, then this script's flags."""
    from topogen.models.gan3.oracle import OracleSettings
    from topogen.models.gan3.settings import GanSettings

    options = stage3_options(args.config)
    names = ("epochs", "oracle_samples", "rescore_samples", "relax_steps", "min_repeat_2d")
    for name in (*names, "chgnet_model"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    options["seed"] = args.seed
    gan_fields = {f.name for f in dataclasses.fields(GanSettings)}
    oracle_fields = {f.name for f in dataclasses.fields(OracleSettings)} - {"batch_size"}
    unknown = set(options) - gan_fields - oracle_fields
    if unknown:
        raise SystemExit(f"{args.config}: unknown train.gan.stage3 options {sorted(unknown)}")
    oracle = OracleSettings(**{k: v for k, v in options.items() if k in oracle_fields})
    kept = {k: v for k, v in options.items() if k in gan_fields and k != "oracle"}
    settings = GanSettings(**kept, oracle=oracle)
    if reward_weight is not None:
        settings.reward_weight = reward_weight
    return settings


def curve(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per scoring (x = 0 before the first epoch, k + 1 after epoch k): counts per verdict."""
    rows = [summary["initial"], *summary["epochs"]] if summary["initial"] else summary["epochs"]
    out = []
    for r in rows:
        row: dict[str, Any] = {"x": r["epoch"] + 1, "n": r["n"]}
        for v in VERDICTS:
            if v in r["counts"]:
                c = r["counts"][v]
                row[v] = {"k": c["k"], "fraction": c["fraction"], "interval": c["interval"]}
        for key in (f"reward_{m}_{h}" for h in HEADS for m in ("auc", "rank")):
            row[key] = r.get(key)
        out.append(row)
    return out


def run_arm(name: str, args: argparse.Namespace, gap_model: Path | None) -> dict[str, Any]:
    """One arm through :func:`train_stage` (in a worker process of ``threads // jobs``
    threads)."""
    from topogen.models.gan3.train import train_stage
    from topogen.runtime import set_threads

    threads = max(1, args.threads // args.jobs)
    set_threads(threads)
    warnings.filterwarnings("ignore")

    settings = settings_for(args, ARMS[name])
    work = args.out / "work" / name
    t0 = time.perf_counter()
    result = train_stage(
        3,
        args.images,
        args.table,
        work,
        work / "model.ckpt",
        settings,
        init=args.stage2,
        autoencoder=args.autoencoder,
        band_gap_model=gap_model,
        topology_model=args.topology_model,
        accelerator="cpu",
        threads=threads,
        log=lambda m: log(f"{name}: {m}"),
    )
    summary = result.summary
    assert summary is not None  # Stage III always re-scores
    final = last_epoch_rescored(work, args, gap_model, threads, settings.rescore_samples)
    return {
        "settings": dataclasses.asdict(settings),
        "seconds": time.perf_counter() - t0,
        "per_epoch": curve(summary),
        "rescored": summary["rescored"],
        "model_epoch": summary["model_epoch"],
        "stage_metric": summary["stage_metric"],
        "last_epoch_rescored": final,
    }


def last_epoch_rescored(
    work: Path, args: argparse.Namespace, gap_model: Path | None, threads: int, n: int
) -> dict[str, Any]:
    """The arm's last epoch (``last.ckpt``, not the selected best epoch) re-scored on the
    same fresh samples: what the training did by its end, free of the selection's noise."""
    import torch

    from topogen.models.gan3.gan import CrystalGAN
    from topogen.models.gan3.train import rescore, stage3_oracle

    ckpt = torch.load(work / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    model = CrystalGAN(**ckpt["hyper_parameters"])
    model.load_state_dict(ckpt["state_dict"])
    model.on_load_checkpoint(ckpt)
    parts = stage3_oracle(model, args.autoencoder, gap_model, threads, args.topology_model)
    model.attach_oracle(*parts)
    out = rescore(model.eval(), n)
    return {"model_epoch": out["model_epoch"], **out["rescored"]}


def compare(arms: dict[str, Any], which: str = "rescored") -> dict[str, Any]:
    """Re-scored fraction (``which``: the selected model's, or ``last_epoch_rescored``),
    reward minus control, and whether the 90% intervals overlap."""
    out = {}
    a, b = arms["reward"][which]["counts"], arms["control"][which]["counts"]
    for v in VERDICTS:
        if v in a and v in b:
            (alo, ahi), (blo, bhi) = a[v]["interval"], b[v]["interval"]
            out[v] = {
                "reward_minus_control": a[v]["fraction"] - b[v]["fraction"],
                "intervals_overlap": not (alo > bhi or blo > ahi),
                "reward_higher_without_overlap": alo > bhi,
            }
    return out


def fmt(c: dict[str, Any] | None) -> str:
    if c is None:
        return "-"
    lo, hi = c["interval"]
    return f"{100 * c['fraction']:5.1f} [{100 * lo:4.1f}-{100 * hi:4.1f}]"


def table(result: dict[str, Any]) -> str:
    """Per-epoch and re-scored fractions (%, 90% interval) of both arms, as text."""
    verdicts = [v for v in VERDICTS if v in result["arms"]["reward"]["per_epoch"][0]]
    head = f"{'after':>7} | " + " | ".join(f"{arm + ' ' + v:^18}" for arm in ARMS for v in verdicts)
    lines = [head, "-" * len(head)]
    per = {arm: result["arms"][arm]["per_epoch"] for arm in ARMS}
    for i, row in enumerate(per["reward"]):
        label = "start" if row["x"] == 0 else f"ep {row['x'] - 1}"
        cells = [fmt(per[arm][i].get(v)) for arm in ARMS for v in verdicts]
        lines.append(f"{label:>7} | " + " | ".join(f"{c:^18}" for c in cells))
    lines.append("-" * len(head))
    for key, label in (("rescored", "best"), ("last_epoch_rescored", "last")):
        counts = {arm: result["arms"][arm][key]["counts"] for arm in ARMS}
        cells = [fmt(counts[arm].get(v)) for arm in ARMS for v in verdicts]
        lines.append(f"{label:>7} | " + " | ".join(f"{c:^18}" for c in cells))
    n = {arm: result["arms"][arm]["rescored"]["n"] for arm in ARMS}
    epochs = {arm: result["arms"][arm]["model_epoch"] for arm in ARMS}
    lines.append(
        f"re-scored on {n} fresh samples: best = the stage's model (its best epoch: {epochs}), "
        "last = the last epoch's"
    )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from topogen.report.training import PAPER_BEST

    verdicts = [v for v in VERDICTS if v in result["arms"]["reward"]["per_epoch"][0]]
    fig, axes = plt.subplots(1, len(verdicts), figsize=(4.2 * len(verdicts), 3.8), squeeze=False)
    for ax, v in zip(axes[0], verdicts, strict=True):
        for arm, color in zip(ARMS, ("C0", "C1"), strict=True):
            rows = result["arms"][arm]["per_epoch"]
            x = [r["x"] for r in rows]
            f = [100 * r[v]["fraction"] for r in rows]
            lo = [100 * r[v]["interval"][0] for r in rows]
            hi = [100 * r[v]["interval"][1] for r in rows]
            ax.plot(x, f, marker=".", color=color, label=arm)
            ax.fill_between(x, lo, hi, color=color, alpha=0.15)
            for k, (key, marker) in enumerate((("rescored", "s"), ("last_epoch_rescored", "D"))):
                c = result["arms"][arm][key]["counts"][v]
                xr = max(x) + 1.5 + 1.2 * k + (0.4 if arm == "control" else 0.0)
                f0, (lo0, hi0) = 100 * c["fraction"], (100 * e for e in c["interval"])
                err = [[f0 - lo0], [hi0 - f0]]
                ax.errorbar([xr], [f0], yerr=err, color=color, marker=marker, capsize=3)
        if f"oracle_{v}" in PAPER_BEST:
            ax.axhline(100 * PAPER_BEST[f"oracle_{v}"], ls=":", color="grey", lw=1)
        ax.set(xlabel="epochs (re-scored: square best, diamond last)", ylabel=f"% {v}", title=v)
        ax.legend(fontsize=8, title="90% Wilson bands; dotted: paper", title_fontsize=7)
    fig.suptitle("Stage III with the oracle reward vs without (same Stage II start, same seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stage2", type=Path, default=Path("results/models/gan/stage2/model.ckpt"))
    ap.add_argument("--images", type=Path, default=Path("results/encode/images.pt"))
    ap.add_argument("--table", type=Path, default=Path("results/data/structures.parquet"))
    ap.add_argument(
        "--autoencoder", type=Path, default=Path("results/models/autoencoder/autoencoder.ckpt")
    )
    ap.add_argument(
        "--band-gap-model",
        default="results/models/cgcnn/model.ckpt",
        help="CGCNN gap oracle (insulating, both); 'none': stability only",
    )
    ap.add_argument(
        "--topology-model",
        type=Path,
        help="CrystalBERT topology classifier as a third oracle in both arms (topological, all; "
        "the reward arm climbs its head too), e.g. results/models/crystalbert/topology.ckpt",
    )
    ap.add_argument(
        "--config", type=Path, default=Path("config/config.yaml"), help="oracle options"
    )
    ap.add_argument("--epochs", type=int, default=50, help="Stage III epochs per arm (50, paper)")
    ap.add_argument("--oracle-samples", type=int, help="per epoch (library default: 32)")
    ap.add_argument("--rescore-samples", type=int, default=512, help="fresh samples (512)")
    ap.add_argument("--relax-steps", type=int, help="oracle FIRE steps (config's)")
    ap.add_argument("--min-repeat-2d", type=int, help="oracle phonon supercell (config's)")
    ap.add_argument("--chgnet-model", help="the oracle's fine-tuned CHGNet (default: 0.3.0)")
    ap.add_argument("--seed", type=int, default=0, help="both arms' seed (0)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads in all (2)")
    ap.add_argument("--jobs", type=int, default=2, choices=[1, 2], help="arms at once (2)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/stage3"), help="output folder")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(max(1, args.threads // args.jobs))
    warnings.filterwarnings("ignore")
    gap = None if args.band_gap_model.lower() == "none" else Path(args.band_gap_model)
    missing = [
        p
        for p in (args.stage2, args.images, args.table, args.autoencoder, gap, args.topology_model)
        if p and not p.exists()
    ]
    if missing:
        raise SystemExit(f"missing inputs {[str(p) for p in missing]}: run `make demo` first")
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"inputs": {}, "arms": {}}
    from topogen.io.provenance import sha256

    models = (gap, args.topology_model, args.chgnet_model)
    for p in (args.stage2, args.images, args.table, args.autoencoder, *models):
        if p is not None:
            result["inputs"][str(p)] = sha256(p)
    result["options"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    log(f"arms {list(ARMS)}: {args.epochs} epochs each from {args.stage2}, {args.jobs} at once")
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=spawn) as pool:
        futures = {arm: pool.submit(run_arm, arm, args, gap) for arm in ARMS}
        result["arms"] = {arm: f.result() for arm, f in futures.items()}
    result["comparison"] = compare(result["arms"])
    result["comparison_last_epoch"] = compare(result["arms"], "last_epoch_rescored")
    (args.out / "stage3.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "stage3.png")
    print(table(result))
    for which in ("comparison", "comparison_last_epoch"):
        for v, c in result[which].items():
            print(
                f"{which} {v}: reward - control {100 * c['reward_minus_control']:+.1f} points; "
                f"90% intervals {'overlap' if c['intervals_overlap'] else 'do not overlap'}"
            )
    log(f"-> {args.out / 'stage3.json'}, {args.out / 'stage3.png'}")


if __name__ == "__main__":
    main()
