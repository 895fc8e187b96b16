"""Voxel autoencoders and crystal images for the three-stage GAN (Tyner 2025).

Two 3D-convolutional autoencoders (:class:`VoxelAutoencoder`) compress the voxel grids of
:mod:`topogen.encode.voxels` to vectors: one for element-site grids, shared by all elements
(input: one element's grid; circular padding, the grid being periodic), and one for the
lattice grid (2 channels, zero padding). :class:`CrystalAutoencoder` (a LightningModule)
holds both, trains them together on a list of structures and turns crystals into 2D images
and back:

    image (1 + max_elements, 1 + latent_dim), float32
    row 0          [0,    lattice latent]
    row 1 + i      [Z/84, latent of the i-th element grid], elements sorted by Z
    unused rows    all zeros

Latents are batch-normalised and pass through ``tanh``: every entry lies in [-1, 1] (column
0 in [0, 1]), the range of a GAN generator with a tanh output. Decoding reads column 0 of each
row as ``Z = 84 x`` rounded to the nearest supported element (noble gases excluded); rows with
``84 x < 0.5`` are empty; two rows with the same Z give one element with the sites of both.
``decode`` goes image -> latents -> voxel grids (sigmoid of the decoders' logits) -> peaks and
lattice parameters (:func:`~topogen.encode.voxels.devoxelize`) -> pymatgen Structure.

Loss: per-voxel binary cross-entropy (grids lie in [0, 1]) weighted ``1 + pos_weight x
target``, so the few voxels of the blobs are not outvoted by the empty ones (unweighted, the
decoders settle on the mean grid). Both losses are summed; AdamW, warm-up + cosine schedule.

Settings, measured with ``bench/encode.py`` on the 252 unrelaxed 2D prototypes (202 trained
on, 50 held out; StructureMatcher with default tolerances; 2 shared CPU cores):

* small default (:data:`~topogen.encode.voxels.SMALL`: 16^3 grids, site sigma 0.75 voxel,
  lattice sigma 2.5 voxel, latent 32, image 5 x 33, 40 epochs of 8 crystals a batch): trains
  in 1.5-2 minutes; reproduces 98% of the held-out crystals, mean site error 0.04 Angstrom
  (the voxels alone: 98%; the miss is a GaS-type layer whose Ga-Ga dimer is 1.6 voxels long
  along c at 16^3 and merges into one peak).
* paper-like (:data:`~topogen.encode.voxels.PAPER_LIKE`: 32^3 grids as in iMatGen/CCDCGAN,
  site sigma 1 voxel, lattice sigma 3 voxel, same networks and epochs): about 40 minutes;
  98% of the held-out crystals, mean site error 0.07 Angstrom (the voxels alone: 100%).

Checkpoints are Lightning ``.ckpt`` files written atomically (temp file + rename, see
:class:`AtomicCheckpointIO`); their hyper-parameters are plain dicts, so both resuming and
:func:`load_autoencoder` read them with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import nn
from torch.nn import functional as F

from topogen.encode import EncodingError
from topogen.encode.voxels import (
    LATTICE_CHANNELS,
    MAX_VOXEL_Z,
    SMALL,
    VOXEL_ELEMENTS,
    CrystalVoxels,
    VoxelSpec,
    devoxelize,
    voxelize,
)
from topogen.io.atomic import atomic_path
from topogen.models.training import LastCheckpoint, precision_for, quiet_lightning
from topogen.runtime import set_threads

LAST = "last.ckpt"
FINAL = "autoencoder.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes atomically and reads with ``weights_only=True``."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(
        self, path: Any, map_location: Any = "cpu", weights_only: bool | None = None
    ) -> dict[str, Any]:
        return torch.load(path, map_location=map_location, weights_only=True)


def _wrap_pad(x: torch.Tensor) -> torch.Tensor:
    """Pad the three spatial axes by one voxel periodically (3 concatenations: cheaper than
    ``F.pad(mode="circular")``, which copies face by face)."""
    for dim in (2, 3, 4):
        x = torch.cat([x.narrow(dim, x.shape[dim] - 1, 1), x, x.narrow(dim, 0, 1)], dim)
    return x


class _Conv(nn.Module):
    """3x3x3 convolution with periodic or zero padding of one voxel."""

    def __init__(
        self, cin: int, cout: int, stride: int = 1, periodic: bool = True, bias: bool = True
    ) -> None:
        super().__init__()
        self.periodic = periodic
        self.conv = nn.Conv3d(cin, cout, 3, stride=stride, padding=0 if periodic else 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_wrap_pad(x) if self.periodic else x)


def coordinate_channels(size: int, periodic: bool, device: Any = None) -> torch.Tensor:
    """(n, size, size, size) fixed position channels for CoordConv-style layers:
    ``sin`` and ``cos`` of ``2 pi i / size`` per axis when periodic (6 channels), else a linear
    ramp from -1 to 1 per axis (3 channels)."""
    i = torch.arange(size, dtype=torch.float32, device=device)
    if periodic:
        t = 2 * math.pi * i / size
        axes = [torch.sin(t), torch.cos(t)]
    else:
        axes = [torch.linspace(-1, 1, size, device=device)]
    out = []
    for dim in range(3):
        shape = [1, 1, 1]
        shape[dim] = size
        for a in axes:
            out.append(a.view(shape).expand(size, size, size))
    return torch.stack(out)


class _CoordConv(nn.Module):
    """A 3x3x3 convolution of ``cat([x, coordinates])``, computed as ``conv(x)`` plus a
    convolution of the fixed coordinate channels done once per call for the whole batch
    (the same result without concatenating them to every sample)."""

    def __init__(self, cin: int, cout: int, size: int, periodic: bool) -> None:
        super().__init__()
        coords = coordinate_channels(size, periodic)
        self.register_buffer("coords", coords[None], persistent=False)
        self.conv = _Conv(cin, cout, 1, periodic)
        self.pos = _Conv(len(coords), cout, 1, periodic, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.pos(self.coords.to(x.dtype))


class VoxelAutoencoder(nn.Module):
    """3D-conv autoencoder (C, G, G, G) -> latent (latent_dim,) in [-1, 1] -> logits.

    Encoder: a 3x3x3 convolution to ``width`` channels, then stride-2 3x3x3 convolutions
    (channels doubling up to ``max_width``) while the grid is even and larger than 4, each
    with batch norm and GELU, then a linear layer, a batch norm without affine parameters and
    ``tanh`` (standardised, bounded latents). Decoder: a linear layer, then per level a
    stride-2 transposed convolution (kernel 2) and a 3x3x3 convolution; a last 3x3x3
    convolution gives the logits. The decoder's convolutions also see fixed coordinate
    channels (:func:`coordinate_channels`; CoordConv, Liu et al., NeurIPS 2018), which makes
    "put a blob at the voxel this vector names" a smooth function to learn. Without the batch
    norms, the sparse grids (a few blobs in 16^3 voxels) hardly move the encoder's output and
    the decoder settles on the mean grid. ``periodic``: circular padding, periodic
    coordinates. Full-resolution layers are thin: 3D convolutions dominate the cost on CPUs.
    """

    def __init__(
        self,
        channels: int,
        grid: int,
        latent_dim: int,
        width: int = 8,
        max_width: int = 64,
        periodic: bool = True,
    ) -> None:
        super().__init__()
        sizes, widths = [grid], [width]
        while sizes[-1] > 4 and sizes[-1] % 2 == 0:
            sizes.append(sizes[-1] // 2)
            widths.append(min(2 * widths[-1], max_width))
        self.sizes, self.widths = sizes, widths
        self.stem = _Conv(channels, width, 1, periodic)
        self.down = nn.ModuleList(
            _Conv(widths[k], widths[k + 1], 2, periodic) for k in range(len(sizes) - 1)
        )
        self.enc_norms = nn.ModuleList(nn.BatchNorm3d(w) for w in widths)
        flat = widths[-1] * sizes[-1] ** 3
        self.to_latent = nn.Linear(flat, latent_dim)
        self.latent_norm = nn.BatchNorm1d(latent_dim, affine=False)
        self.from_latent = nn.Linear(latent_dim, flat)
        levels = list(reversed(range(len(sizes) - 1)))  # coarse to fine
        self.up = nn.ModuleList(
            nn.ConvTranspose3d(widths[k + 1], widths[k], 2, stride=2) for k in levels
        )
        # a coordinate-aware 3x3x3 convolution after each upsampling but the last one
        self.refine = nn.ModuleList(
            _CoordConv(widths[k], widths[k], sizes[k], periodic) for k in levels[:-1]
        )
        self.dec_norms = nn.ModuleList(nn.BatchNorm3d(widths[k]) for k in levels[:-1])
        self.head = _CoordConv(width, channels, grid, periodic)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.enc_norms[0](self.stem(x)))
        for conv, norm in zip(self.down, self.enc_norms[1:], strict=True):
            h = F.gelu(norm(conv(h)))
        return torch.tanh(self.latent_norm(self.to_latent(h.flatten(1))))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> logits; ``torch.sigmoid`` gives the grid."""
        s = self.sizes[-1]
        h = F.gelu(self.from_latent(z)).view(-1, self.widths[-1], s, s, s)
        for k, up in enumerate(self.up):
            h = F.gelu(up(h))
            if k < len(self.refine):
                h = F.gelu(self.dec_norms[k](self.refine[k](h)))
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def _plain(value: Any) -> Any:
    """Plain Python containers (weights_only-safe)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _nearest_element(x: np.ndarray) -> np.ndarray:
    """Column-0 values -> atomic numbers (0 for an empty row)."""
    z = np.asarray(x, dtype=np.float64) * MAX_VOXEL_Z
    table = np.asarray(VOXEL_ELEMENTS, dtype=np.float64)
    nearest = table[np.abs(z[:, None] - table[None, :]).argmin(axis=1)].astype(np.int64)
    return np.where(z < 0.5, 0, nearest)


class CrystalAutoencoder(L.LightningModule):
    """Element-grid and lattice-grid autoencoders, and crystal images (module docstring).

    ``spec``: the voxel grids (:class:`~topogen.encode.voxels.VoxelSpec` or its dict);
    ``latent_dim``: latent size of both autoencoders (image width - 1); ``max_elements``:
    element rows of an image; ``width``/``max_width``: channels at full resolution / at most;
    ``pos_weight``: loss weight of the blobs; ``augment``: random periodic shifts of the
    element grids while training (off by default; untested at scale).
    """

    def __init__(
        self,
        spec: VoxelSpec | dict[str, Any] | None = None,
        latent_dim: int = 32,
        max_elements: int = 4,
        width: int = 8,
        max_width: int = 64,
        lr: float = 2e-3,
        pos_weight: float = 20.0,
        augment: bool = False,
    ) -> None:
        super().__init__()
        if spec is None:
            spec = SMALL
        spec = _plain(spec.as_dict() if isinstance(spec, VoxelSpec) else spec)
        self.save_hyperparameters(
            {
                "spec": spec,
                "latent_dim": latent_dim,
                "max_elements": max_elements,
                "width": width,
                "max_width": max_width,
                "lr": lr,
                "pos_weight": pos_weight,
                "augment": augment,
            }
        )
        self.spec = VoxelSpec.from_dict(spec)
        self.element_ae = VoxelAutoencoder(1, self.spec.grid, latent_dim, width, max_width, True)
        self.lattice_ae = VoxelAutoencoder(
            LATTICE_CHANNELS, self.spec.lattice_size, latent_dim, width, max_width, False
        )

    # --- training ----------------------------------------------------------------------------

    def _loss(self, ae: VoxelAutoencoder, x: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy per voxel, weighted ``1 + pos_weight * target`` so that the
        few voxels of the blobs are not outvoted by the empty ones."""
        target = x.clamp(0.0, 1.0)  # overlapping sites of one element may sum above 1
        bce = F.binary_cross_entropy_with_logits(ae(x), target, reduction="none")
        return (bce * (1 + self.hparams.pos_weight * target)).mean()

    def _losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self._loss(self.element_ae, batch["elements"]), self._loss(
            self.lattice_ae, batch["lattice"]
        )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.hparams.augment:  # one random periodic shift of the batch's element grids
            shifts = torch.randint(0, self.spec.grid, (3,)).tolist()
            batch = {**batch, "elements": torch.roll(batch["elements"], shifts, (2, 3, 4))}
        el, lat = self._losses(batch)
        n = batch["lattice"].shape[0]
        self.log("train_element_loss", el, batch_size=n)
        self.log("train_lattice_loss", lat, batch_size=n)
        return el + lat

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        el, lat = self._losses(batch)
        n = batch["lattice"].shape[0]
        self.log("val_element_loss", el, batch_size=n)
        self.log("val_lattice_loss", lat, batch_size=n)
        self.log("val_loss", el + lat, batch_size=n, prog_bar=True)

    def configure_optimizers(self) -> Any:
        """AdamW; learning rate warmed up over the first 10% of the steps, then cosine-decayed
        to 2% at the end and held there (so a resumed run with more epochs goes on)."""
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 0
        if not total or not math.isfinite(total):
            return opt
        total = max(1, int(total))
        warm = max(1, total // 10)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = min(1.0, (step - warm) / max(1, total - warm))
            return 0.02 + 0.49 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["hyper_parameters"] = _plain(dict(self.hparams))

    # --- crystal images ----------------------------------------------------------------------

    @property
    def image_shape(self) -> tuple[int, int]:
        return 1 + self.hparams.max_elements, 1 + self.hparams.latent_dim

    def voxelize(self, structure: Any) -> CrystalVoxels:
        """:func:`~topogen.encode.voxels.voxelize` with this model's spec; EncodingError if
        the crystal has more elements than the image has rows."""
        vox = voxelize(structure, self.spec)
        if len(vox.numbers) > self.hparams.max_elements:
            raise EncodingError(
                f"{structure.composition.reduced_formula}: {len(vox.numbers)} elements, the "
                f"crystal images hold at most {self.hparams.max_elements}"
            )
        return vox

    @torch.no_grad()
    def encode_voxels(self, voxels: Sequence[CrystalVoxels], batch_size: int = 64) -> np.ndarray:
        """Crystal images (B, rows, cols) of voxelized crystals."""
        rows, cols = self.image_shape
        out = np.zeros((len(voxels), rows, cols), dtype=np.float32)
        was_training = self.training
        self.eval()
        for start in range(0, len(voxels), batch_size):
            chunk = voxels[start : start + batch_size]
            batch = collate_voxels(chunk, self.device)
            lat = self.lattice_ae.encode(batch["lattice"]).float().cpu().numpy()
            el = self.element_ae.encode(batch["elements"]).float().cpu().numpy()
            k = 0
            for i, v in enumerate(chunk):
                img = out[start + i]
                img[0, 1:] = lat[i]
                for j, z in enumerate(v.numbers):
                    img[1 + j, 0] = z / MAX_VOXEL_Z
                    img[1 + j, 1:] = el[k]
                    k += 1
        self.train(was_training)
        return out

    def encode(self, structure: Any) -> np.ndarray:
        """The crystal image (rows, cols) of one structure."""
        return self.encode_voxels([self.voxelize(structure)])[0]

    def encode_many(self, structures: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Crystal images (B, rows, cols); EncodingError naming the index of a bad structure."""
        voxels = []
        for i, s in enumerate(structures):
            try:
                voxels.append(self.voxelize(s))
            except EncodingError as exc:
                raise EncodingError(f"structure {i}: {exc}") from exc
        return self.encode_voxels(voxels, batch_size)

    @torch.no_grad()
    def decode_voxels(self, images: Any, batch_size: int = 64) -> list[CrystalVoxels]:
        """Images (B, rows, cols) -> voxel grids (sigmoid of the decoders' logits)."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.shape[1:] != self.image_shape:
            raise EncodingError(f"images of shape {images.shape[1:]}, expected {self.image_shape}")
        was_training = self.training
        self.eval()
        out: list[CrystalVoxels] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            zs = [_nearest_element(img[1:, 0]) for img in chunk]
            lat_in = torch.as_tensor(chunk[:, 0, 1:], device=self.device)
            lattice = torch.sigmoid(self.lattice_ae.decode(lat_in)).float().cpu().numpy()
            el_rows = [img[1:, 1:][z > 0] for img, z in zip(chunk, zs, strict=True)]
            stacked = np.concatenate(el_rows) if el_rows else np.zeros((0, chunk.shape[2] - 1))
            if len(stacked):
                el_in = torch.as_tensor(stacked, device=self.device)
                grids = torch.sigmoid(self.element_ae.decode(el_in)).float().cpu().numpy()
            else:
                grids = np.zeros((0, 1, *(self.spec.grid,) * 3), dtype=np.float32)
            k = 0
            for i, z in enumerate(zs):
                numbers = z[z > 0]
                out.append(
                    CrystalVoxels(lattice[i], numbers, grids[k : k + len(numbers), 0], self.spec)
                )
                k += len(numbers)
        self.train(was_training)
        return out

    def decode(self, image: Any) -> Any:
        """One crystal image -> pymatgen Structure; EncodingError if no site or cell decodes."""
        return devoxelize(self.decode_voxels(image)[0])

    def decode_many(self, images: Any, batch_size: int = 64) -> list[Any]:
        """Images -> Structures, ``None`` where an image decodes to nothing valid."""
        out: list[Any] = []
        for vox in self.decode_voxels(images, batch_size):
            try:
                out.append(devoxelize(vox))
            except EncodingError:
                out.append(None)
        return out


# --- data --------------------------------------------------------------------------------------


def collate_voxels(voxels: Sequence[CrystalVoxels], device: Any = None) -> dict[str, torch.Tensor]:
    """``lattice`` (B, 2, L, L, L) and ``elements`` (sum of k, 1, G, G, G) float32 tensors."""
    lattice = np.stack([v.lattice for v in voxels]).astype(np.float32)
    elements = np.concatenate([v.elements for v in voxels])[:, None].astype(np.float32)
    return {
        "lattice": torch.as_tensor(lattice, device=device),
        "elements": torch.as_tensor(elements, device=device),
    }


def voxelize_all(
    structures: Sequence[Any], spec: VoxelSpec = SMALL, max_elements: int | None = None
) -> tuple[list[CrystalVoxels], list[int], list[tuple[int, str]]]:
    """(voxels, indices of the structures they came from, [(index, reason)] of the rest)."""
    voxels, kept, rejected = [], [], []
    for i, s in enumerate(structures):
        try:
            v = voxelize(s, spec)
            if max_elements is not None and len(v.numbers) > max_elements:
                raise EncodingError(f"{len(v.numbers)} elements, images hold {max_elements}")
        except EncodingError as exc:
            rejected.append((i, str(exc)))
            continue
        voxels.append(v)
        kept.append(i)
    return voxels, kept, rejected


def _compact(v: CrystalVoxels) -> CrystalVoxels:
    return CrystalVoxels(
        v.lattice.astype(np.float16), v.numbers, v.elements.astype(np.float16), v.spec
    )


# --- training and loading ------------------------------------------------------------------


def train_autoencoder(
    structures: Sequence[Any],
    outdir: str | os.PathLike[str],
    *,
    spec: VoxelSpec = SMALL,
    latent_dim: int = 32,
    max_elements: int = 4,
    width: int = 8,
    max_width: int = 64,
    lr: float = 2e-3,
    pos_weight: float = 20.0,
    augment: bool = False,
    epochs: int = 40,
    batch_size: int = 8,
    val_fraction: float = 0.1,
    seed: int = 0,
    threads: int | None = None,
    accelerator: str = "auto",
    precision: str | None = None,
    resume: bool = True,
    progress: bool = False,
) -> CrystalAutoencoder:
    """Train a :class:`CrystalAutoencoder` on ``structures`` and return it (in eval mode).

    Writes to ``outdir``: ``last.ckpt`` after every epoch (training resumes from it when
    ``resume`` and it exists), ``autoencoder.ckpt`` (weights + hyper-parameters) at the end,
    and Lightning's ``logs/version_<k>/metrics.csv`` (one version per run). Structures that
    cannot be voxelized raise EncodingError naming their index (filter them first with
    :func:`voxelize_all`).
    """
    from lightning.pytorch.loggers import CSVLogger

    set_threads(threads)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    voxels, _, rejected = voxelize_all(structures, spec, max_elements)
    if rejected:
        i, reason = rejected[0]
        raise EncodingError(f"structure {i}: {reason}")
    if len(voxels) < 2:
        raise EncodingError("the autoencoders need at least 2 structures to train on")
    voxels = [_compact(v) for v in voxels]
    L.seed_everything(seed, verbose=False)
    order = np.random.default_rng(seed).permutation(len(voxels))
    n_val = min(round(val_fraction * len(voxels)), len(voxels) - 2)
    val = [voxels[i] for i in order[:n_val]]
    train = [voxels[i] for i in order[n_val:]]
    loader = torch.utils.data.DataLoader(
        train,
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(train) > batch_size,  # batch norm needs more than one crystal
        collate_fn=collate_voxels,
        generator=torch.Generator().manual_seed(seed),
    )
    val_loader = (
        torch.utils.data.DataLoader(val, batch_size=batch_size, collate_fn=collate_voxels)
        if val
        else None
    )
    model = CrystalAutoencoder(
        spec.as_dict(), latent_dim, max_elements, width, max_width, lr, pos_weight, augment
    )
    last = outdir / LAST
    with quiet_lightning():
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator=accelerator,
            devices=1,
            precision=precision or precision_for(accelerator),
            logger=CSVLogger(outdir, name="logs", flush_logs_every_n_steps=1),
            callbacks=[LastCheckpoint(last)],
            enable_checkpointing=False,  # LastCheckpoint is the only one wanted
            plugins=[AtomicCheckpointIO()],
            enable_model_summary=False,
            enable_progress_bar=progress,
            log_every_n_steps=max(1, min(50, len(loader))),
            default_root_dir=outdir,
            num_sanity_val_steps=0,
        )
        trainer.fit(model, loader, val_loader, ckpt_path=last if resume and last.exists() else None)
        trainer.save_checkpoint(outdir / FINAL, weights_only=True)
    return model.eval()


def load_autoencoder(path: str | os.PathLike[str], map_location: Any = "cpu") -> CrystalAutoencoder:
    """A trained :class:`CrystalAutoencoder` from a ``.ckpt`` (read with weights_only=True)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        model = CrystalAutoencoder(**ckpt["hyper_parameters"])
        model.load_state_dict(ckpt["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError) as exc:
        raise EncodingError(f"{path}: not a crystal autoencoder checkpoint ({exc})") from exc
    except pickle.UnpicklingError as exc:
        raise EncodingError(f"{path}: not a crystal autoencoder checkpoint ({exc})") from exc
    return model.eval()
