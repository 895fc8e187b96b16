"""LoGAN as a LightningModule: WGAN-GP on local environments (Kovacs et al. 2024).

One model generates structures of one target: atoms ``numbers`` (N, the target composition,
in a fixed order) in the cell ``cell`` (rows are lattice vectors; for a molecule, a box with
``pbc`` all False). The generator maps noise to fractional coordinates; the positions
``frac @ cell`` (the third coordinate squeezed into ``span`` of the cell around its middle)
are described atom by atom with the differentiable power spectrum, so the critic's gradients
reach the generator's weights. Each training step:

* ``n_critic`` critic steps: generated environments (generator frozen, so all the steps'
  structures are drawn and described in one call) against real ones
  drawn for the same atoms (:class:`~topogen.models.logan.environments.EnvironmentPool`);
  loss ``mean D(fake) - mean D(real) + lambda * GP``, where GP is the squared deviation
  from 1 of the gradient norm of D at random interpolations between each generated atom's
  descriptor and the real descriptor drawn for it (same element, so the same network);
* one generator step: loss ``-mean D(fake)``.

Both use RMSProp (as in the paper). Logged per epoch: ``wasserstein`` (the critic's estimate
``mean D(real) - mean D(fake)`` before its update, averaged over the epoch's critic steps),
``gradient_penalty`` and ``g_loss``. Scores are averaged over atoms (the paper sums; for one
target N is fixed, so this only rescales the critic).

``snapshot_states`` holds the weights of earlier generators kept for sampling (settings
``snapshots``; :func:`~topogen.models.logan.train.generate` draws from them and the final
generator in turn); they travel in the checkpoint, so a resumed run keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from topogen.encode.descriptors import PowerSpectrum
from topogen.models.logan.environments import EnvironmentPool
from topogen.models.logan.networks import AtomicCritic, CoordinateGenerator
from topogen.models.logan.settings import CRITIC_HIDDEN, GENERATOR_HIDDEN, LoganSettings


class LoGAN(L.LightningModule):
    """Generator + critic of one target (module docstring). ``species``: every element of
    the training set and the target (the descriptor's density channels); ``options``: the
    hyper-parameters of :meth:`LoganSettings.model_hparams` (its defaults)."""

    def __init__(
        self,
        numbers: Sequence[int],
        cell: Sequence[Sequence[float]],
        pbc: Sequence[bool],
        species: Sequence[int],
        **options: Any,
    ) -> None:
        super().__init__()
        defaults = LoganSettings().model_hparams()
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise TypeError(f"LoGAN: unknown option(s) {unknown}; known: {sorted(defaults)}")
        self.save_hyperparameters(
            {
                "numbers": [int(z) for z in numbers],
                "cell": [[float(x) for x in row] for row in cell],
                "pbc": [bool(p) for p in pbc],
                "species": sorted({int(z) for z in species} | {int(z) for z in numbers}),
                **defaults,
                **options,
            }
        )
        self.automatic_optimization = False
        hp = self.hparams
        self.register_buffer("numbers", torch.as_tensor(hp.numbers), persistent=False)
        self.register_buffer("cell", torch.as_tensor(hp.cell), persistent=False)
        self.descriptor = PowerSpectrum(
            hp.species,
            hp.r_cut,
            hp.n_max,
            hp.l_max,
            hp.radial,
            max_neighbors=hp.get("max_neighbors"),
        )
        self.generator = CoordinateGenerator(hp.latent_dim, len(hp.numbers), GENERATOR_HIDDEN)
        self.critic = AtomicCritic(sorted(set(hp.numbers)), self.descriptor.dim, CRITIC_HIDDEN)
        self.pool: EnvironmentPool | None = None  # set before training (not saved)
        self.snapshot_states: list[dict[str, torch.Tensor]] = []

    def keep_snapshot(self) -> None:
        """Keep a copy of the generator's current weights (module docstring)."""
        self.snapshot_states.append(
            {k: v.detach().cpu().clone() for k, v in self.generator.state_dict().items()}
        )

    def generators(self) -> list[torch.nn.Module]:
        """The kept snapshots, oldest first, then the final generator."""
        out: list[torch.nn.Module] = []
        for state in self.snapshot_states:
            g = CoordinateGenerator(
                self.hparams.latent_dim, len(self.hparams.numbers), GENERATOR_HIDDEN
            )
            g.load_state_dict(state)
            out.append(g.to(self.device).eval())
        return [*out, self.generator]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["generator_snapshots"] = self.snapshot_states

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.snapshot_states = list(checkpoint.get("generator_snapshots", []))

    # -- structures -----------------------------------------------------------------------
    def noise(self, n: int, seed: int | None = None) -> torch.Tensor:
        g = None if seed is None else torch.Generator().manual_seed(int(seed))
        return torch.randn(n, self.hparams.latent_dim, generator=g).to(self.device)

    def positions(self, frac: torch.Tensor) -> torch.Tensor:
        """Fractional (B, N, 3) -> Cartesian (B, N, 3); the third coordinate within
        ``span`` of the cell around its middle."""
        span = self.hparams.span
        frac = torch.cat([frac[..., :2], 0.5 + (frac[..., 2:] - 0.5) * span], dim=-1)
        return frac @ self.cell.to(frac.dtype)

    def describe(self, pos: torch.Tensor) -> torch.Tensor:
        """Cartesian (B, N, 3) -> descriptors (B * N, dim), differentiable in ``pos``."""
        b, n, _ = pos.shape
        batch = torch.arange(b, device=pos.device).repeat_interleave(n)
        cell = self.cell.to(pos.dtype).expand(b, 3, 3)
        pbc = torch.as_tensor(self.hparams.pbc).expand(b, 3)
        return self.descriptor(pos.reshape(b * n, 3), self.numbers.repeat(b), cell, batch, pbc)

    # -- training -------------------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        lr = self.hparams.lr
        return [
            torch.optim.RMSprop(self.generator.parameters(), lr=lr),
            torch.optim.RMSprop(self.critic.parameters(), lr=lr),
        ]

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, numbers: torch.Tensor):
        eps = torch.rand(len(real), 1, device=real.device, dtype=real.dtype)
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
        score = self.critic(mixed, numbers)
        (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)
        return ((grad.norm(dim=-1) - 1) ** 2).mean()

    def training_step(self, batch: Any, batch_idx: int) -> None:
        if self.pool is None:
            raise RuntimeError("LoGAN.pool must be set before training (train_logan does)")
        opt_g, opt_c = self.optimizers()  # type: ignore[misc]
        hp = self.hparams
        numbers = self.numbers.repeat(hp.batch_size)
        draws = torch.Generator().manual_seed(hp.seed * 1_000_003 + self.global_step)
        w_sum, gp_sum = 0.0, 0.0
        n_real = len(numbers)
        with torch.no_grad():  # the generator is frozen during the critic steps: one call
            fakes = self.describe(
                self.positions(self.generator(self.noise(hp.n_critic * hp.batch_size)))
            ).split(n_real)
        for fake in fakes:
            real = self.pool.draw(self.numbers.cpu(), hp.batch_size, draws).to(fake)
            scores = self.critic(torch.cat([real, fake]), numbers.repeat(2))
            w = scores[:n_real].mean() - scores[n_real:].mean()
            gp = self.gradient_penalty(real, fake, numbers)
            opt_c.zero_grad()
            self.manual_backward(-w + hp.gp_weight * gp)
            opt_c.step()
            w_sum, gp_sum = w_sum + float(w.detach()), gp_sum + float(gp.detach())
        fake = self.describe(self.positions(self.generator(self.noise(hp.batch_size))))
        g_loss = -self.critic(fake, numbers).mean()
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        log = {"on_step": False, "on_epoch": True, "batch_size": 1}
        self.log("wasserstein", w_sum / hp.n_critic, **log)
        self.log("gradient_penalty", gp_sum / hp.n_critic, **log)
        self.log("g_loss", g_loss.detach(), **log)
