"""Benchmark: the chemistry of what a Stage I GAN generates, through the real pipeline.

Trains the crystal autoencoders on the offline 2D prototype library (unrelaxed; crystals with
at most ``--max-elements`` elements, so that the old continuous-Z images, which had 4 element
rows, train on the same crystals), writes the crystal images
(:func:`topogen.models.autoencoder.images.encode_images`, which also scores a held-out round
trip), trains GAN Stage I (:func:`topogen.models.gan3.train.train_stage`), decodes ``--n``
samples (:func:`topogen.models.gan3.sampling.sample_candidates`) and applies the funnel's
validity checks (:mod:`topogen.screen.validity`: SMACT charge neutrality with the Pauling
test, structural sanity). Reported: the share of the ``--n`` samples that decode, whose
composition passes SMACT, that are valid in both respects, and which elements they hold.
SMACT counts single elements and all-metal compositions as valid without a charge test (as
CDVAE does), so the share is also given for the samples with two or more elements and at
least one non-metal (pymatgen's ``is_metal``), where charge neutrality is actually tested.
The decoded samples are written to ``<workdir>/samples.parquet``.

It uses only interfaces that the continuous-Z code had too, so the same file measures the
code before and after the per-element rows (issue 14): run it in a worktree of each, with
the same seeds and epochs. Usage:

    python bench/gan_chemistry.py --json bench/out/gan-chemistry.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HALOGENS_ALKALIS_H = {"H", "Li", "Na", "K", "Rb", "Cs", "F", "Cl", "Br", "I"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def library_records(max_elements: int) -> list[Any]:
    from topogen.data import prototypes as P
    from topogen.io.tables import Record

    return [
        Record(c.id, "prototypes", c.structure, {"prototype": c.prototype})
        for c in P.candidates()
        if len(c.structure.composition.elements) <= max_elements
    ]


def chemistry(structures: list[Any], n: int) -> dict[str, Any]:
    """Shares (of ``n`` samples) that decode, pass SMACT, are valid; element statistics."""
    from topogen.screen.validity import composition_problem, validity

    smact = [composition_problem(s.composition) is None for s in structures]
    tested = [
        len(s.composition) > 1 and not all(el.is_metal for el in s.composition) for s in structures
    ]
    valid = [validity(s)[0] for s in structures]
    elements = collections.Counter(el.symbol for s in structures for el in s.composition)
    formulas = collections.Counter(s.composition.reduced_formula for s in structures)
    n_el = [len(s.composition.elements) for s in structures]
    return {
        "n": n,
        "decoded": len(structures) / n,
        "smact_neutral": sum(smact) / n,
        "smact_neutral_of_decoded": sum(smact) / max(1, len(structures)),
        "valid": sum(valid) / n,
        "charge_tested": sum(tested) / n,
        "smact_neutral_of_charge_tested": sum(a and b for a, b in zip(smact, tested, strict=True))
        / max(1, sum(tested)),
        "with_h_alkali_halogen": sum(
            any(el.symbol in HALOGENS_ALKALIS_H for el in s.composition) for s in structures
        )
        / max(1, len(structures)),
        "mean_elements": float(np.mean(n_el)) if n_el else float("nan"),
        "distinct_formulas": len(formulas),
        "top_formulas": formulas.most_common(15),
        "top_elements": elements.most_common(20),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=512, help="samples decoded and checked (512)")
    ap.add_argument("--seed", type=int, default=0, help="autoencoder, GAN and sample seed (0)")
    ap.add_argument("--ae-epochs", type=int, default=40, help="autoencoder epochs (40)")
    ap.add_argument("--epochs", type=int, default=30, help="GAN Stage I epochs (30)")
    ap.add_argument("--max-elements", type=int, default=4, help="library crystals kept (4)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1)")
    ap.add_argument("--workdir", type=Path, help="keep checkpoints here (default: a temp dir)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from topogen.io.tables import write_records
    from topogen.models.autoencoder.images import ImageSettings, encode_images
    from topogen.models.gan3.sampling import sample_candidates
    from topogen.models.gan3.settings import GanSettings
    from topogen.models.gan3.train import train_stage

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-gan-chemistry-"))
    work.mkdir(parents=True, exist_ok=True)
    records = library_records(args.max_elements)
    table = write_records(records, work / "table.parquet")
    log(f"{len(records)} library crystals (<= {args.max_elements} elements) -> {work}")

    t0 = time.perf_counter()
    ae = work / "autoencoder.ckpt"
    metrics, _ = encode_images(
        records,
        work / "images.pt",
        ae,
        work / "ae",
        ImageSettings(epochs=args.ae_epochs, seed=args.seed),
        accelerator="cpu",
        log=log,
    )
    t_ae = time.perf_counter() - t0
    held = metrics["held_out"]
    log(f"images {metrics['image_shape']}: held-out round trip {held['reproduced']:.3f}")

    t0 = time.perf_counter()
    gan = work / "stage1.ckpt"
    settings = GanSettings(epochs=args.epochs, seed=args.seed)
    train_stage(1, work / "images.pt", table, work / "gan", gan, settings, threads=args.threads)
    t_gan = time.perf_counter() - t0
    log(f"GAN Stage I: {args.epochs} epochs in {t_gan:.0f} s")

    t0 = time.perf_counter()
    result = sample_candidates(gan, ae, args.n, args.seed)
    t_sample = time.perf_counter() - t0
    structures = [r.structure for r in result.records]
    write_records(result.records, work / "samples.parquet")
    figures = {
        "command": " ".join(sys.argv),
        "image_shape": metrics["image_shape"],
        "n_library": len(records),
        "n_encoded": metrics["n_encoded"],
        "round_trip_held_out": held,
        "element_row_rms": metrics.get("element_row_rms"),  # absent in the old code
        "seconds": {"autoencoder": t_ae, "gan_stage1": t_gan, "sample": t_sample},
        "samples": chemistry(structures, args.n),
        "undecodable_reasons": collections.Counter(
            r.reason.split(":")[1].strip() if ":" in r.reason else r.reason for r in result.rejected
        ).most_common(5),
        "training_crystals": chemistry([r.structure for r in records], len(records)),
    }
    text = json.dumps(figures, indent=2, default=str)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
