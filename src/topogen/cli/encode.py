"""``topogen encode ...``: structure tables -> graphs, tokens, descriptors, crystal images."""

from __future__ import annotations

import argparse

from topogen.cli.options import add_options, read_options
from topogen.cli.parser import (
    Subparsers,
    command,
    gpus_option,
    group,
    later,
    table_argument,
    threads_option,
)
from topogen.cli.stage import config, log, stage

# Help of each ImageSettings field (type and default come from the dataclass).
IMAGE_HELP = {
    "grid": "voxels per axis",
    "sigma": "site Gaussian width (voxels)",
    "lattice_sigma": "lattice width (voxels)",
    "latent_dim": "latent size (image width)",
    "presence": "RMS of an element row above which decoding keeps the element",
    "width": "channels at full resolution",
    "epochs": "autoencoder training epochs",
    "batch_size": "crystals per batch",
    "lr": "peak learning rate",
    "held_out": "fraction never trained on",
    "seed": "split and weight seed",
}


def _encode(args: argparse.Namespace) -> int:
    """``topogen encode graphs|tokens|descriptors TABLE --out FILE``."""
    from topogen.encode import encoded
    from topogen.io.tables import load_records

    params = config(args, "table", "out", "threads")
    with stage(args, inputs=[args.table]) as run:
        table = load_records(args.table)  # a row that does not decode is quarantined
        records = table.records
        rejected = table.rejected + encoded.encode_table(
            records, args.kind, run.output(args.out), params, source=args.table
        )
        run.quarantine(args.out, rejected)
    n = len(records) + len(table.rejected)
    log(
        f"encode {args.kind}: {n - len(rejected)} of {n} structures -> {args.out}; "
        f"{len(rejected)} quarantined"
    )
    return 0


def _images(args: argparse.Namespace) -> int:
    """``topogen encode images TABLE --out PT --model CKPT``: autoencoders + crystal images."""
    from topogen.io.tables import load_records
    from topogen.models.autoencoder.images import ImageSettings, encode_images
    from topogen.runtime import accelerator_devices

    settings = read_options(args, ImageSettings)
    with stage(args, inputs=[args.table]) as run:
        table = load_records(args.table)  # a row that does not decode is quarantined
        records = table.records
        metrics, rejected = encode_images(
            records,
            run.output(args.out),
            run.output(args.model),
            args.workdir,
            settings,
            source=args.table,
            accelerator=accelerator_devices(args.gpus)[0],
            log=log,
        )
        run.write_json(args.metrics, metrics)
        rejected = table.rejected + rejected
        run.quarantine(args.out, rejected)
    held = metrics["held_out"] or {}
    log(
        f"encode images: {metrics['n_encoded']} of {len(records) + len(table.rejected)} "
        f"structures -> {args.out}; "
        f"{len(rejected)} quarantined; held-out round trip "
        f"{held.get('n_reproduced', 0)}/{held.get('n', 0)} reproduced, mean site error "
        f"{held.get('mean_site_error_A', float('nan')):.3f} A"
    )
    return 0


def register(stages: Subparsers) -> None:
    """Add ``topogen encode ...``."""
    cmds = group(stages, "encode", "encode structures for the models", "kind", "KIND")

    def encoder(name: str, help: str) -> argparse.ArgumentParser:
        p = command(cmds, name, _encode, help)
        table_argument(p)
        p.add_argument("--out", required=True, metavar="PT", help="encoded data set (.pt)")
        threads_option(p)
        return p

    p = encoder("graphs", "periodic crystal graphs (CGCNN / CrystalBERT)")
    p.add_argument("--cutoff", type=float, default=8.0, metavar="A", help="neighbour cutoff")
    p.add_argument("--max-neighbors", type=int, default=12, help="nearest neighbours kept")
    p.add_argument("--n-gaussians", type=int, default=41, help="Gaussian distance features")
    p.add_argument(
        "--atom-features",
        choices=["onehot", "cgcnn-like"],
        default="cgcnn-like",
        help="atom feature vectors",
    )
    p = encoder("tokens", "CrystalBERT tokens: space group, electron count, element fractions")
    p.add_argument("--symprec", type=float, default=0.01, metavar="A", help="spglib tolerance")
    p = encoder("descriptors", "LoGAN local power-spectrum descriptors, per atom")
    p.add_argument("--r-cut", type=float, default=5.0, metavar="A", help="cutoff radius")
    p.add_argument("--n-max", type=int, default=6, help="radial basis functions")
    p.add_argument("--l-max", type=int, default=4, help="maximum angular momentum")
    p.add_argument(
        "--radial", choices=["gaussian", "bessel"], default="gaussian", help="radial basis"
    )

    p = command(
        cmds,
        "images",
        _images,
        "crystal images: train the voxel autoencoders, then encode every structure",
        "Train the voxel autoencoders (resuming from --workdir) on the table minus a seeded\n"
        "held-out part, report the held-out encode -> decode round trip (StructureMatcher,\n"
        "default tolerances) in --metrics, and write every structure's crystal image.\n"
        "Structures that cannot be voxelized go to PT.quarantine.csv with the reason.",
    )
    table_argument(p)
    p.add_argument("--out", required=True, metavar="PT", help="crystal images (.pt)")
    p.add_argument("--model", required=True, metavar="CKPT", help="trained autoencoders")
    p.add_argument("--metrics", required=True, metavar="JSON", help="held-out round trip")
    p.add_argument(
        "--workdir", required=True, metavar="DIR", help="checkpoints and logs (resumable)"
    )
    later(p, _image_options)


def _image_options(p: argparse.ArgumentParser) -> None:
    from topogen.models.autoencoder.images import ImageSettings

    add_options(p, ImageSettings, IMAGE_HELP)
    gpus_option(p)
    threads_option(p)
