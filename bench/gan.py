"""Benchmark: training throughput (samples/s) of the three GAN stages, and of the Stage III
oracle, on the CPU and (when torch sees one) on a GPU in the same run.

Images are crystal images of the offline 2D library (unrelaxed prototypes) made by an
UNTRAINED crystal autoencoder: throughput depends on shapes, not on what the images hold.
Each stage runs ``--steps`` Lightning steps of ``--batch-size`` images after a warm-up.
Stage III's network steps (discriminator, generator with the reward model) are measured with
the per-epoch oracle call replaced by random scores (``_NoOracle``); the oracle itself
(CHGNet relaxation + phonons, ``--oracle-n`` library monolayers, 6x6x1 phonon supercells) is
timed separately and reported per sample, three times in the same run: as it is
(``--threads`` single-thread worker processes), as it was before issue 20 (one process of
``--threads`` torch threads) and as it is with the optional 3x3x1 phonon pre-screen
(:mod:`topogen.calc.phonons`), with the ratios to "before" and whether the verdicts agree.
``--oracle-only`` skips the network stages. Ratios: each stage against Stage I on the same
device, and GPU against CPU per stage. Usage:

    python bench/gan.py --json bench/out/gan.json
    python bench/gan.py --steps 200 --batch-size 64 --width 64   # paper-like networks
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def library_images(n: int) -> tuple[torch.Tensor, list[Any]]:
    from topogen.data.prototypes import candidates
    from topogen.models.autoencoder.crystal import CrystalAutoencoder, voxelize_all

    structures = [c.structure for c in candidates()]
    ae = CrystalAutoencoder()
    _, kept, _ = voxelize_all(structures, ae.spec)
    usable = [structures[i] for i in kept]
    images = torch.as_tensor(ae.encode_many((usable * (n // len(usable) + 1))[:n]))
    return images, usable


def stage_throughput(
    stage: int, images: torch.Tensor, args: argparse.Namespace, accelerator: str
) -> float:
    """Samples per second over ``args.steps`` training steps (after ``args.warmup``)."""
    import lightning as L

    from topogen.models.gan3.gan import CrystalGAN
    from topogen.models.training import quiet_lightning
    from topogen.runtime import precision_for

    class _NoOracle(CrystalGAN):
        def on_train_epoch_start(self) -> None:  # network steps only (see the docstring)
            if self.hparams.stage == 3 and not len(self.buffer_images):
                fake = self.sample_images(64, 0)
                self.add_scored(fake, torch.rand(64, 2).numpy())

    class _Clock(L.Callback):
        """Times batches ``warmup`` .. ``warmup + steps`` (then stops the fit)."""

        def __init__(self) -> None:
            self.batches, self.t0, self.t1 = 0, 0.0, 0.0

        def _sync(self) -> float:
            if accelerator == "gpu":
                torch.cuda.synchronize()
            return time.perf_counter()

        def on_train_batch_start(self, trainer, *a: Any) -> None:
            if self.batches == args.warmup:
                self.t0 = self._sync()

        def on_train_batch_end(self, trainer, *a: Any) -> None:
            self.batches += 1
            if self.batches == args.warmup + args.steps:
                self.t1 = self._sync()
                trainer.should_stop = True

    labels = torch.randint(0, 2, (len(images),)).float()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
    )
    model = _NoOracle(
        stage, images.shape[1:], noise_dim=args.noise_dim, width=args.width, has_gap_model=True
    )
    clock = _Clock()
    with quiet_lightning():
        trainer = L.Trainer(
            max_epochs=10_000,
            accelerator=accelerator,
            devices=1,
            precision=precision_for(accelerator),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[clock],
        )
        trainer.fit(model, loader)
    return args.steps * args.batch_size / (clock.t1 - clock.t0)


def oracle_throughput(
    structures: list[Any], n: int, threads: int, *, workers: int, prescreen: int
) -> dict[str, Any]:
    """The oracle on ``n`` library monolayers: ``workers`` processes sharing ``threads``
    threads, phonon pre-screen ``prescreen`` (0: none)."""
    from topogen.models.gan3.oracle import Oracle, OracleSettings

    settings = OracleSettings(min_repeat_2d=6, prescreen=prescreen)
    oracle = Oracle(settings, threads=threads, workers=workers)
    _ = oracle.chgnet  # load once, outside the clock
    batch = structures[:n]
    t0 = time.perf_counter()
    scores = oracle(batch)
    dt = time.perf_counter() - t0
    return {
        "n": len(batch),
        "workers": workers,
        "prescreen": prescreen,
        "seconds": dt,
        "samples_per_s": len(batch) / dt,
        "stable": scores.stable.tolist(),
        "stability": scores.stability.round(4).tolist(),
    }


def oracle_figures(structures: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """The oracle as it is (``--threads`` single-thread workers) against the way it ran
    before (one process of ``--threads`` torch threads), and with the optional 3x3x1 phonon
    pre-screen, on the same monolayers in the same run; verdicts compared with "before"."""
    from topogen.calc.phonons import PRESCREEN_REPEAT

    n, threads = args.oracle_n, args.threads
    runs = {
        "before": oracle_throughput(structures, n, threads, workers=1, prescreen=0),
        "now": oracle_throughput(structures, n, threads, workers=threads, prescreen=0),
        "prescreen": oracle_throughput(
            structures, n, threads, workers=threads, prescreen=PRESCREEN_REPEAT
        ),
    }
    base = runs["before"]
    for name, o in runs.items():
        o["speedup"] = o["samples_per_s"] / base["samples_per_s"]
        o["verdicts_agree"] = o["stable"] == base["stable"]
        log(
            f"oracle {name}: {o['samples_per_s']:.3f} samples/s ({o['n']} in {o['seconds']:.1f}"
            f" s), {o['speedup']:.2f}x before, same verdicts: {o['verdicts_agree']}"
        )
    return runs["now"] | {"before": base, "with_prescreen": runs["prescreen"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n-images", type=int, default=512, help="training images (512)")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per stage (60)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed first steps (5)")
    ap.add_argument("--batch-size", type=int, default=32, help="images per batch (32)")
    ap.add_argument("--width", type=int, default=32, help="convolution channels (32)")
    ap.add_argument("--noise-dim", type=int, default=64, help="noise size (64)")
    ap.add_argument("--oracle-n", type=int, default=16, help="monolayers through the oracle (16)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (2)")
    ap.add_argument("--oracle-only", action="store_true", help="time the oracle only")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    warnings.filterwarnings("ignore")

    images, structures = library_images(args.n_images)
    log(f"{len(images)} crystal images {tuple(images.shape[1:])}, batch {args.batch_size}")
    devices = [] if args.oracle_only else ["cpu"] + (["gpu"] if torch.cuda.is_available() else [])
    out: dict[str, Any] = {"settings": vars(args) | {"json": str(args.json)}, "devices": {}}
    for dev in devices:
        rates = {}
        for stage in (1, 2, 3):
            rates[f"stage{stage}"] = stage_throughput(stage, images, args, dev)
            log(f"{dev}: stage {stage}: {rates[f'stage{stage}']:.0f} samples/s")
        rates["stage2_vs_stage1"] = rates["stage2"] / rates["stage1"]
        rates["stage3_vs_stage1"] = rates["stage3"] / rates["stage1"]
        out["devices"][dev] = rates
    if "gpu" in out["devices"]:
        out["gpu"] = torch.cuda.get_device_name(0)
        out["gpu_vs_cpu"] = {
            k: out["devices"]["gpu"][k] / out["devices"]["cpu"][k]
            for k in ("stage1", "stage2", "stage3")
        }
        log(f"GPU / CPU: {out['gpu_vs_cpu']}")
    if args.oracle_n:
        out["oracle"] = oracle_figures(structures, args)
        if "cpu" in out["devices"]:
            stage3 = out["devices"]["cpu"]["stage3"]
            out["oracle_vs_stage3_network"] = out["oracle"]["samples_per_s"] / stage3
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
