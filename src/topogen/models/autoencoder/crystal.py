"""Crystal images for the three-stage GAN (Tyner 2025): the voxel autoencoders of a crystal.

Two 3D-convolutional autoencoders (:class:`~topogen.models.autoencoder.networks.
VoxelAutoencoder`) compress the voxel grids of :mod:`topogen.encode.voxels` to vectors: one
for element-site grids, shared by all elements (input: one element's grid; circular padding,
the grid being periodic), and one for the lattice grid (2 channels, zero padding).
:class:`CrystalAutoencoder` (a LightningModule) holds both, trains them together on a list
of structures and turns crystals into 2D images and back:

    image (1 + 79, latent_dim), float32
    row 0          the lattice latent
    row 1 + k      the latent of the grid of element VOXEL_ELEMENTS[k] (Z = 1..84 without
                   the noble gases, in order of Z) when the crystal holds it; else all zeros

As in the paper (one voxel channel per element), an element's identity is *which row* holds
it, never a number read from the image: a crystal may hold any of the 79 elements, and
decoding cannot invent an element between two that the generator learnt. Latents are
batch-normalised and pass through ``tanh``: every entry lies in [-1, 1], the range of a GAN
generator with a tanh output. Decoding keeps the element rows whose root-mean-square entry
exceeds ``presence`` (:data:`PRESENCE`) and drops the rest; an image with no row kept decodes
to nothing (:func:`~topogen.encode.voxels.devoxelize` raises EncodingError).
``decode`` goes image -> latents -> voxel grids (sigmoid of the decoders' logits) -> peaks and
lattice parameters (:func:`~topogen.encode.voxels.devoxelize`) -> pymatgen Structure.

The presence threshold. Every entry of a real element row is tanh of a standardised value,
so a trained autoencoder gives rows of RMS near 0.6; an absent element's row is exactly 0.
Measured on the 252 library prototypes (16^3 default, 40 epochs, ``bench/gan_chemistry.py``):
the 563 present rows have RMS 0.55 to 0.88 (1% quantile 0.56, median 0.67), so
:data:`PRESENCE` = 0.25 lies below half the smallest; a Stage I generator's rows for absent
elements have a median RMS of about 0.04. A row above the threshold whose decoded grid has
no peak adds no site (the element is then absent from the structure). A barely trained
autoencoder, whose latent batch norm has not yet settled, gives smaller rows: the images
stage writes the margin (``element_row_rms`` in its metrics) and warns when a real row falls
below the threshold.

Loss: per-voxel binary cross-entropy (grids lie in [0, 1]) weighted ``1 + pos_weight x
target``, so the few voxels of the blobs are not outvoted by the empty ones (unweighted, the
decoders settle on the mean grid). Both losses are summed; AdamW, warm-up + cosine schedule.

Settings, measured with ``bench/encode.py`` on the 252 unrelaxed 2D prototypes (202 trained
on, 50 held out; StructureMatcher with default tolerances; 2 shared CPU cores):

* small default (:data:`~topogen.encode.voxels.SMALL`: 16^3 grids, site sigma 0.75 voxel,
  lattice sigma 2.5 voxel, latent 32, image 80 x 32, 40 epochs of 8 crystals a batch): trains
  in 1.5-2 minutes; reproduces 98% of the held-out crystals, mean site error 0.04 Angstrom
  (the voxels alone: 98%; the miss is a GaS-type layer whose Ga-Ga dimer is 1.6 voxels long
  along c at 16^3 and merges into one peak).
* paper-like (:data:`~topogen.encode.voxels.PAPER_LIKE`: 32^3 grids as in iMatGen/CCDCGAN,
  site sigma 1 voxel, lattice sigma 3 voxel, same networks and epochs): about 40 minutes;
  98% of the held-out crystals, mean site error 0.07 Angstrom (the voxels alone: 100%).
Training and checkpoints: :mod:`topogen.models.autoencoder.train`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F

from topogen.encode import EncodingError
from topogen.encode.voxels import (
    LATTICE_CHANNELS,
    SMALL,
    VOXEL_ELEMENTS,
    CrystalVoxels,
    VoxelSpec,
    devoxelize,
    voxelize,
)
from topogen.models.autoencoder.networks import VoxelAutoencoder


def _plain(value: Any) -> Any:
    """Plain Python containers (weights_only-safe)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


PRESENCE = 0.25  # RMS of an element row above which the element is present (docstring)
IMAGE_ELEMENTS = np.asarray(VOXEL_ELEMENTS, dtype=np.int64)  # element of row 1 + k
ELEMENT_ROW = {int(z): 1 + k for k, z in enumerate(VOXEL_ELEMENTS)}


def row_rms(images: Any) -> np.ndarray:
    """(B, 79) root-mean-square entry of each element row of images (B, rows, cols)."""
    x = np.asarray(images, dtype=np.float64)
    return np.sqrt((x[..., 1:, :] ** 2).mean(axis=-1))


class CrystalAutoencoder(L.LightningModule):
    """Element-grid and lattice-grid autoencoders, and crystal images (module docstring).

    ``spec``: the voxel grids (:class:`~topogen.encode.voxels.VoxelSpec` or its dict);
    ``latent_dim``: latent size of both autoencoders (the image width); ``presence``: RMS of
    an element row above which decoding keeps the element; ``width``/``max_width``: channels
    at full resolution / at most; ``pos_weight``: loss weight of the blobs; ``augment``:
    random periodic shifts of the element grids while training (off by default; untested at
    scale).
    """

    def __init__(
        self,
        spec: VoxelSpec | dict[str, Any] | None = None,
        latent_dim: int = 32,
        presence: float = PRESENCE,
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
                "presence": float(presence),
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
        return 1 + len(IMAGE_ELEMENTS), self.hparams.latent_dim

    def voxelize(self, structure: Any) -> CrystalVoxels:
        """:func:`~topogen.encode.voxels.voxelize` with this model's spec."""
        return voxelize(structure, self.spec)

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
                img[0] = lat[i]
                for z in v.numbers:
                    img[ELEMENT_ROW[int(z)]] = el[k]
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
    def decode_voxels(
        self, images: Any, batch_size: int = 64, presence: float | None = None
    ) -> list[CrystalVoxels]:
        """Images (B, rows, cols) -> voxel grids (sigmoid of the decoders' logits) of the
        elements whose rows have an RMS above ``presence`` (None: the model's)."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.shape[1:] != self.image_shape:
            raise EncodingError(f"images of shape {images.shape[1:]}, expected {self.image_shape}")
        thr = self.hparams.presence if presence is None else presence
        was_training = self.training
        self.eval()
        out: list[CrystalVoxels] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            present = row_rms(chunk) > thr  # (B, 79)
            lat_in = torch.as_tensor(chunk[:, 0], device=self.device)
            lattice = torch.sigmoid(self.lattice_ae.decode(lat_in)).float().cpu().numpy()
            stacked = chunk[:, 1:][present]  # (rows present in the chunk, cols)
            if len(stacked):
                el_in = torch.as_tensor(stacked, device=self.device)
                grids = torch.sigmoid(self.element_ae.decode(el_in)).float().cpu().numpy()
            else:
                grids = np.zeros((0, 1, *(self.spec.grid,) * 3), dtype=np.float32)
            k = 0
            for i, keep in enumerate(present):
                numbers = IMAGE_ELEMENTS[keep]
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
    structures: Sequence[Any], spec: VoxelSpec = SMALL
) -> tuple[list[CrystalVoxels], list[int], list[tuple[int, str]]]:
    """(voxels, indices of the structures they came from, [(index, reason)] of the rest)."""
    voxels, kept, rejected = [], [], []
    for i, s in enumerate(structures):
        try:
            v = voxelize(s, spec)
        except EncodingError as exc:
            rejected.append((i, str(exc)))
            continue
        voxels.append(v)
        kept.append(i)
    return voxels, kept, rejected
