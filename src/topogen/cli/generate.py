"""``topogen generate ...``: sample candidate structures from trained models."""

from __future__ import annotations

import argparse

from topogen.cli.parser import Subparsers, command, group, threads_option
from topogen.cli.stage import stage


def _gan(args: argparse.Namespace) -> int:
    from topogen.models.gan3.sampling import sample_candidates

    with stage(args, inputs=[args.generator, args.autoencoder]) as run:
        result = sample_candidates(args.generator, args.autoencoder, args.n, args.seed)
        run.save_records(result, args.out, f"gan: {args.n} samples,")
    return 0


def _logan(args: argparse.Namespace) -> int:
    from topogen.models.logan.sampling import sample_ensemble

    with stage(args, inputs=list(args.models)) as run:
        result = sample_ensemble(args.models, args.n, args.seed, min_distance=args.min_distance)
        run.save_records(result, args.out, f"logan: {args.n} samples x {len(args.models)} models,")
    return 0


def register(stages: Subparsers) -> None:
    """Add ``topogen generate ...``."""
    cmds = group(stages, "generate", "sample candidates from trained models", "model", "MODEL")
    p = command(
        cmds,
        "gan",
        _gan,
        "decode N generator samples into a candidate structure table",
        "Sample i uses noise seeded with SEED + i; every row records the generator checkpoint,\n"
        "its sha256 and its seed. Undecodable samples go to TABLE.quarantine.csv.",
    )
    p.add_argument("--generator", required=True, metavar="CKPT", help="a GAN stage's model")
    p.add_argument("--autoencoder", required=True, metavar="CKPT", help="crystal autoencoder")
    p.add_argument("--n", type=int, default=100, help="samples")
    p.add_argument("--seed", type=int, default=0, help="seed of sample 0")
    p.add_argument("--out", required=True, metavar="TABLE", help="candidate table (.parquet)")
    threads_option(p)
    p = command(
        cmds,
        "logan",
        _logan,
        "N samples of every LoGAN ensemble member, pooled into one candidate table",
        "Sample i of every member uses noise seeded with SEED + i; every row records its\n"
        "member's checkpoint, sha256, target and seed. Samples with atoms closer than\n"
        "--min-distance go to TABLE.quarantine.csv.",
    )
    p.add_argument("--models", required=True, nargs="+", metavar="CKPT", help="the members")
    p.add_argument("--n", type=int, default=100, help="samples per member")
    p.add_argument("--seed", type=int, default=0, help="seed of sample 0")
    p.add_argument("--min-distance", type=float, default=0.5, help="A: closer atoms reject")
    p.add_argument("--out", required=True, metavar="TABLE", help="candidate table (.parquet)")
    threads_option(p)
