"""The three networks of the self-supervised generator, as Lightning modules.

- :class:`Generator` (pretraining): backbone + species head (118 logits from the scalar
  features) + displacement head (one linear map of the vector features: equivariant).
  Loss: NLL of the clean species at masked atoms + ``pos_weight`` x MSE (A^2 per atom) of
  the mean-free displacement (:mod:`topogen.models.ssl.corruption`).
- :class:`PropertyModel` (fine-tuning): the backbone (from the pretrained generator) + a
  randomly initialised feed-forward head on the mean of the atoms' scalar features: two
  classes (cross-entropy; class 1 = "stable") or one standardised value (MSE).
- :class:`SSLGAN`: generator and discriminator (a PropertyModel classifier, class 1 = real),
  manual optimisation. Discriminator loss: L1 between its softmax output and the one-hot
  real/fake label (the paper's "Wasserstein" loss); generator loss: ``adv_weight`` x the same
  L1 against "real" for its outputs + species NLL + ``pos_weight`` x position MSE. The
  generator shows the discriminator soft species (its softmax at masked atoms), so the
  adversarial gradient reaches the species head; it steps every batch, the discriminator
  every ``d_every`` batches.

Corruptions are drawn with the seed (seed, epoch, batch): a resumed run redraws the same.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from topogen.encode import EncodingError
from topogen.models.ssl.backbone import make_backbone, pool
from topogen.models.ssl.corruption import Corruption, center, corrupt
from topogen.models.ssl.crystals import N_SPECIES, Batch

VALID_SEED = 1_000_003  # corruptions of the validation batches: the same every epoch


class _OnBatch(L.LightningModule):
    def transfer_batch_to_device(self, batch: Batch, device: Any, dataloader_idx: int) -> Batch:
        return batch.to(device, torch.get_default_dtype())

    def _finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """A non-finite loss stops training with the place it happened (not NaN epochs)."""
        if not torch.isfinite(loss):
            raise EncodingError(
                f"{type(self).__name__}: non-finite loss ({float(loss)}) at epoch "
                f"{self.current_epoch}, batch {batch_idx}; the last checkpoint is intact"
            )

    def _rng(self, batch_idx: int, valid: bool = False) -> np.random.Generator:
        seed = int(self.hparams.seed)
        return np.random.default_rng(
            [seed, VALID_SEED, batch_idx] if valid else [seed, self.current_epoch, batch_idx]
        )


def _backbone(b: dict[str, Any]) -> nn.Module:
    """The backbone of :class:`~topogen.models.ssl.settings.BackboneSettings` fields ``b``
    (``max_neighbors`` shapes the graph, not the network)."""
    return make_backbone(b["backbone"], hidden=b["hidden"], layers=b["layers"],
                         cutoff=b["cutoff"], n_rbf=b["n_rbf"])  # fmt: skip


class Generator(_OnBatch):
    """Masked-species + denoising model; hyper-parameters (no defaults here: they live in
    :class:`~topogen.models.ssl.settings.PretrainSettings`, whose ``hparams()`` these are)."""

    def __init__(
        self,
        backbone: dict[str, Any],
        species_mask: float,
        mask_fraction: float,
        noise_ratio: float,
        pos_weight: float,
        lr: float,
        seed: int,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = _backbone(backbone)
        hidden = backbone["hidden"]
        self.species_head = nn.Sequential(
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, N_SPECIES)
        )
        self.vector_head = nn.Linear(hidden, 1, bias=False)

    def forward(
        self, species: torch.Tensor, batch: Batch, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(species logits (N, 118), displacements (N, 3))."""
        s, v = self.backbone(species, batch, positions)
        return self.species_head(s), self.vector_head(v).squeeze(-1)

    def corruption(self, batch: Batch, rng: np.random.Generator, **override: Any) -> Corruption:
        h = self.hparams
        options = {"noise_ratio": h.noise_ratio, "species_mask": h.species_mask,
                   "mask_fraction": h.mask_fraction, **override}  # fmt: skip
        return corrupt(batch, rng, **options)

    def losses(
        self, batch: Batch, c: Corruption
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(species NLL at masked atoms, position MSE, logits, displacements)."""
        logits, disp = self(c.inputs, batch, c.noisy)
        nll = F.cross_entropy(logits[c.masked], batch.species[c.masked])
        mse = ((center(disp, batch) - c.target) ** 2).sum(dim=-1).mean()
        return nll, mse, logits, disp

    def _step(self, batch: Batch, batch_idx: int, stage: str) -> torch.Tensor:
        c = self.corruption(batch, self._rng(batch_idx, valid=stage == "val"))
        nll, mse, logits, _ = self.losses(batch, c)
        loss = nll + self.hparams.pos_weight * mse
        self._finite(loss, batch_idx)
        acc = (logits[c.masked].argmax(-1) == batch.species[c.masked]).float().mean()
        n = batch.size
        self.log_dict({f"{stage}_loss": loss, f"{stage}_nll": nll, f"{stage}_pos_mse": mse,
                       f"{stage}_species_acc": acc}, batch_size=n, on_epoch=True,
                      on_step=False)  # fmt: skip
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, batch_idx, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, batch_idx, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class PropertyModel(_OnBatch):
    """The pretrained backbone + a feed-forward head (module docstring): ``backbone`` (the
    generator's), ``task``, ``head`` width, ``lr``, ``mean``/``std`` (the regression target's
    standardisation) and ``seed`` (:class:`~topogen.models.ssl.settings.FinetuneSettings`)."""

    def __init__(
        self,
        backbone: dict[str, Any],
        task: str,
        head: int,
        lr: float,
        seed: int,
        mean: float = 0.0,
        std: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = _backbone(backbone)
        out = 2 if task == "classification" else 1
        hidden = backbone["hidden"]
        self.head = nn.Sequential(nn.Linear(hidden, head), nn.SiLU(), nn.Linear(head, out))

    def forward(
        self, species: torch.Tensor, batch: Batch, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (B, 2) or the standardised value (B,)."""
        s, _ = self.backbone(species, batch, positions)
        out = self.head(pool(s, batch))
        return out if self.hparams.task == "classification" else out.squeeze(-1)

    def predict(self, batch: Batch) -> torch.Tensor:
        """P(class 1) (classification) or the value in the property's units."""
        out = self(one_hot(batch.species, batch.positions.dtype), batch)
        if self.hparams.task == "classification":
            return out.softmax(-1)[:, 1]
        return out * self.hparams.std + self.hparams.mean

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        out = self(one_hot(batch.species, batch.positions.dtype), batch)
        y = batch.labels
        if self.hparams.task == "classification":
            loss = F.cross_entropy(out, y.long())
            metric = (out.argmax(-1) == y.long()).float().mean()
            name = "accuracy"
        else:
            z = (y - self.hparams.mean) / self.hparams.std
            loss = F.mse_loss(out, z.to(out.dtype))
            metric = (out * self.hparams.std + self.hparams.mean - y).abs().mean()
            name = "mae"
        self.log_dict({f"{stage}_loss": loss, f"{stage}_{name}": metric},
                      batch_size=batch.size, on_epoch=True, on_step=False)  # fmt: skip
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def one_hot(species: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, 119) one-hot inputs of unmasked species."""
    return F.one_hot(species, N_SPECIES + 1).to(dtype)


def fake_inputs(c: Corruption, logits: torch.Tensor) -> torch.Tensor:
    """The generator's species as network inputs: its softmax at masked atoms (no mask
    token), the shown one-hot elsewhere."""
    probs = torch.cat([logits.softmax(-1), logits.new_zeros((len(logits), 1))], dim=-1)
    return torch.where(c.masked.unsqueeze(-1), probs, c.inputs)


class SSLGAN(_OnBatch):
    """Generator + discriminator (module docstring); ``generator`` / ``discriminator``: their
    hyper-parameters; the rest: :class:`~topogen.models.ssl.settings.GanSettings`."""

    def __init__(
        self,
        generator: dict[str, Any],
        discriminator: dict[str, Any],
        noise_ratio: float,
        real_noise: float,
        species_mask: float,
        mask_fraction: float,
        adv_weight: float,
        pos_weight: float,
        lr_g: float,
        lr_d: float,
        d_every: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = Generator(**generator)
        self.discriminator = PropertyModel(**discriminator)

    def _corruption(self, batch: Batch, rng: np.random.Generator) -> Corruption:
        h = self.hparams
        return self.generator.corruption(batch, rng, noise_ratio=h.noise_ratio,
                                         species_mask=h.species_mask,
                                         mask_fraction=h.mask_fraction)  # fmt: skip

    def _real_prob(self, species: torch.Tensor, batch: Batch, pos: torch.Tensor) -> torch.Tensor:
        return self.discriminator(species, batch, pos).softmax(-1)[:, 1]

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        h = self.hparams
        opt_g, opt_d = self.optimizers()  # type: ignore[misc]
        rng = self._rng(batch_idx)
        c = self._corruption(batch, rng)
        nll, mse, logits, disp = self.generator.losses(batch, c)
        fake_species, fake_pos = fake_inputs(c, logits), c.noisy + disp
        p_fake = self._real_prob(fake_species, batch, fake_pos)
        # L1 between the softmax (fake, real) and the one-hot label "real": 2 (1 - p)
        adversarial = (2 * (1 - p_fake)).mean()
        g_loss = h.adv_weight * adversarial + nll + h.pos_weight * mse
        self._finite(g_loss, batch_idx)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        logs = {"train_g_loss": g_loss, "train_nll": nll, "train_pos_mse": mse,
                "train_adversarial": adversarial}  # fmt: skip
        if batch_idx % h.d_every == 0:
            jitter = rng.normal(size=tuple(batch.positions.shape))
            scale = (h.real_noise * batch.min_edge)[batch.graph].unsqueeze(-1)
            real_pos = batch.positions + scale * torch.as_tensor(jitter).to(batch.positions)
            p_real = self._real_prob(one_hot(batch.species, real_pos.dtype), batch, real_pos)
            p_fake = self._real_prob(fake_species.detach(), batch, fake_pos.detach())
            d_loss = (2 * (1 - p_real)).mean() + (2 * p_fake).mean()
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
            accuracy = 0.5 * ((p_real > 0.5).float().mean() + (p_fake < 0.5).float().mean())
            logs.update(train_d_loss=d_loss, train_d_accuracy=accuracy)
        self.log_dict(logs, batch_size=batch.size, on_epoch=True, on_step=False)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        c = self._corruption(batch, self._rng(batch_idx, valid=True))
        nll, mse, logits, _ = self.generator.losses(batch, c)
        acc = (logits[c.masked].argmax(-1) == batch.species[c.masked]).float().mean()
        self.log_dict({"val_nll": nll, "val_pos_mse": mse, "val_species_acc": acc},
                      batch_size=batch.size, on_epoch=True, on_step=False)  # fmt: skip

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        h = self.hparams
        return [
            torch.optim.Adam(self.generator.parameters(), lr=h.lr_g),
            torch.optim.Adam(self.discriminator.parameters(), lr=h.lr_d),
        ]
