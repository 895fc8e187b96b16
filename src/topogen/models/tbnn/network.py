"""The network: potential image -> convolutions (periodic padding) -> dense layers with
dropout -> the independent parameters of the symmetric tight-binding model
(:class:`~.tb.TBModel`) -> H(k) -> degenerate-safe ``eigh`` -> bands.

Loss (energies in units of vmax): the mean squared error of the lowest ``n_bands`` bands
over the k grid, plus ``label_weight`` times the per-irrep-block loss: at every high-
symmetry point the exact energies carrying label j are compared with the lowest
eigenvalues of the model's block of label j, so wrong symmetry content costs energy (the
paper's Sec. III.C). Targets with more bands of one label than the model's block holds keep
the lowest (they cannot be matched; the evaluation counts them as label errors).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from topogen.models.tbnn.symmetry import LATTICES
from topogen.models.tbnn.tb import TBModel
from topogen.topology.batched import eigh

__all__ = ["TBNN", "sector_targets"]


def sector_targets(
    tb: TBModel, point: str, energies: np.ndarray, labels: np.ndarray
) -> dict[int, np.ndarray]:
    """Exact energies ``(n, n_bands)`` at a point sorted into the model's blocks: label j ->
    ``(n, dim_j)``, NaN where the sample has fewer bands of that label."""
    _, block_labels = tb.sectors(point)
    out = {}
    for j in np.unique(block_labels):
        dim = int((block_labels == j).sum())
        target = np.full((len(energies), dim), np.nan)
        for i, (e, lab) in enumerate(zip(energies, labels, strict=True)):
            mine = np.sort(e[lab == j])[:dim]
            target[i, : len(mine)] = mine
        out[int(j)] = target
    return out


class TBNN(L.LightningModule):
    """Tight-binding network of one lattice, image ``size`` and TB model (settings in
    :class:`~.settings.NetworkSettings`); ``kpoints`` (reduced, the training grid) and
    ``n_bands``/``vmax`` come from the data."""

    def __init__(
        self,
        lattice: str,
        size: int,
        n_bands: int,
        vmax: float,
        kpoints: list[list[float]],
        orbitals: str = "s s p p d d f",
        radius: float = 2.0,
        channels: tuple[int, ...] = (16, 32, 64),
        hidden: tuple[int, ...] = (512, 256),
        dropout: float = 0.1,
        lr: float = 1e-3,
        label_weight: float = 1.0,
        late_factor: float = 0.1,
        late_fraction: float = 0.25,
        seed: int = 0,
        time_reversal: bool = True,
        epochs: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tb = TBModel(LATTICES[lattice], orbitals, radius, time_reversal)
        layers: list[nn.Module] = []
        c_in, side = 1, size
        for c in channels:
            layers += [
                nn.Conv2d(c_in, c, 3, padding=1, padding_mode="circular"),
                nn.GELU(),
                nn.Conv2d(c, c, 3, padding=1, padding_mode="circular"),
                nn.GELU(),
                nn.AvgPool2d(2, ceil_mode=True),
            ]
            c_in, side = c, (side + 1) // 2
        dense: list[nn.Module] = [nn.Flatten()]
        width = c_in * side * side
        for h in hidden:
            dense += [nn.Linear(width, h), nn.GELU(), nn.Dropout(dropout)]
            width = h
        dense.append(nn.Linear(width, self.tb.n_params))
        self.net = nn.Sequential(*layers, *dense)
        self.register_buffer("kpoints", torch.tensor(kpoints, dtype=torch.float64))

    def start_at(self, energy: float) -> None:
        """Set the output layer's bias to the parameters of H = energy x 1 (units of vmax)
        and shrink its weights: training starts from nearly flat bands at the data's mean
        energy, not from random long-range hoppings."""
        # the basis matrices are orthonormal (Frobenius, real part), identity in their span:
        # the coefficients are projections (a least-squares solve was not reliable here)
        onsite = self.tb.basis[:, 0]
        coef = energy * np.real(np.trace(onsite.conj(), axis1=-2, axis2=-1))
        coef = torch.as_tensor(coef * (self.tb.shell_of == 0))
        with torch.no_grad():
            self.net[-1].bias.copy_(coef.to(self.net[-1].bias.dtype))
            self.net[-1].weight.mul_(0.01)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """TB parameters (batch, P) in units of vmax of images (batch, L, L) in units of
        vmax."""
        return self.net(images.unsqueeze(1).float()).double()

    def bands(self, params: torch.Tensor, kpoints: Any = None) -> torch.Tensor:
        """Lowest ``n_bands`` (batch, n_k, n_bands) in units of vmax."""
        k = self.kpoints if kpoints is None else torch.as_tensor(kpoints, dtype=torch.float64)
        return self.tb.bands(params, k.to(params.device))[..., : self.hparams.n_bands]

    def predict_energies(self, images: torch.Tensor, kpoints: Any = None) -> torch.Tensor:
        """Bands in E0 of potential images in units of vmax."""
        return self.bands(self(images), kpoints) * self.hparams.vmax

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        params = self(batch["images"])
        # H on the k grid and at the high-symmetry points from one set of hoppings
        points = list(self.tb.lattice.points)
        special = [self.tb.lattice.points[p][0] for p in points]
        k = torch.cat([self.kpoints, self.kpoints.new_tensor(special)])
        h = self.tb.hamiltonian(params, k)
        n_k = len(self.kpoints)
        bands = eigh(h[..., :n_k, :, :])[0][..., : self.hparams.n_bands]
        band = ((bands - batch["energies"]) ** 2).mean()
        block, count = params.new_zeros(()), 0
        for i, point in enumerate(points):
            for j, e in self.tb.sector_energies(params, point, h[..., n_k + i, :, :]).items():
                target = batch[f"block_{point}_{j}"]
                mask = torch.isfinite(target)
                if mask.any():
                    diff = torch.where(mask, e[..., : target.shape[-1]] - target, 0.0)
                    block = block + (diff**2).sum()
                    count += int(mask.sum())
        block = block / max(count, 1)
        return {"band": band, "block": block}

    def label_factor(self) -> float:
        hp = self.hparams
        late = self.current_epoch >= (1 - hp.late_fraction) * max(1, self.trainer.max_epochs)
        return hp.label_weight * (hp.late_factor if late else 1.0)

    def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
        parts = self.loss(batch)
        total = parts["band"] + self.label_factor() * parts["block"]
        n = len(batch["images"])
        self.log("train_loss", total, batch_size=n, on_epoch=True, on_step=False)
        self.log("train_band_rms", parts["band"].sqrt(), batch_size=n, on_epoch=True, on_step=False)
        return total

    def validation_step(self, batch: dict[str, torch.Tensor], _: int) -> None:
        parts = self.loss(batch)
        n = len(batch["images"])
        self.log("val_band_rms", parts["band"].sqrt(), batch_size=n, prog_bar=True)
        self.log("val_block_rms", parts["block"].sqrt(), batch_size=n)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, self.hparams.epochs))
        return {"optimizer": opt, "lr_scheduler": sched}
