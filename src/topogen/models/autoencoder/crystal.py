"""Crystal images for the three-stage GAN (Tyner 2025): the voxel autoencoders of a crystal.

Two 3D-convolutional autoencoders (:class:`~topogen.models.autoencoder.networks.
VoxelAutoencoder`) compress the voxel grids of :mod:`topogen.encode.voxels` to vectors: one
for element-site grids, shared by all elements (input: one element's grid; circular padding,
the grid being periodic), and one for the lattice grid (2 channels, zero padding).
:class:`CrystalAutoencoder` (a LightningModule) holds both, trains them together on a list
of structures and turns crystals into 2D images and back:

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
    MAX_VOXEL_Z,
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
