"""Three-stage GAN on crystal images (after Tyner et al., "Fine tuning generative adversarial
networks with universal force fields: application to two-dimensional topological
insulators", and Long et al.'s CCDCGAN).

Networks (:mod:`topogen.models.gan3.networks`)
    :class:`Generator`: noise (``noise_dim``) -> linear -> 2D transposed convolutions that
    double the image width twice -> ``tanh`` -> a crystal image (:mod:`topogen.models.
    autoencoder`: a lattice row and one row per element, absent elements' rows near 0).
    :class:`Critic`: 2D convolutions
    (spectral norm) -> one logit per head; the discriminators have one head, the reward
    model two (stability, gap).

Stages (one :class:`CrystalGAN` LightningModule, ``stage`` in 1, 2, 3; manual optimisation,
Adam with betas (0.5, 0.999), one discriminator and one generator step per batch, the
non-saturating generator loss):

I.   real vs generated on every crystal image of the training table (paper: lr 5e-4,
     100 epochs).
II.  the generator of Stage I against a NEW topology-aware discriminator: real topological
     crystals are labelled 1, real trivial crystals and generated ones 0 (the ``topo2d``
     labels; unlabelled crystals are not used). Paper: lr 2e-4, 50 epochs.
III. the generator and discriminator of Stage II go on, and the generator also answers to
     the oracles of :mod:`topogen.models.gan3.oracle` (CHGNet relaxation + phonon stability, the
     CGCNN gap score, and, as a step beyond the paper, a CrystalBERT topology score when a
     topology model is given), which no gradient flows through. Departure: by default the
     discriminator keeps training on the real images (``stage3_discriminator="train"``);
     the paper's Stage III uses no real data (``"freeze"``: the Stage II discriminator
     fixed). Not yet measured against each other (``bench/stage3.py`` reads the option from
     the config's ``train.gan.stage3`` block).

Why a reward model (Stage III). The oracles take a decoded, relaxed structure; decoding
(peak finding), relaxation and phonopy are not differentiable, and a score-function
(REINFORCE) estimate from tens of oracle calls per epoch is too noisy to train a generator.
So a differentiable reward model (:mod:`topogen.models.gan3.reward`: a :class:`Critic` with
a sigmoid head per oracle, class-weighted loss) learns the oracle's scores, and the generator
loss is ``adv_weight x`` the Stage II adversarial term (keeps samples realistic and
topological-looking) ``+ reward_weight x`` the non-saturating loss of each reward head in use
(stability; gap when a band-gap model is given; topology when a topology model is given).
``reward_weight`` 0 is the control without the oracle (still scored, not steered).
Undecodable or impossible samples score 0, so the reward model also learns where images stop
being crystals.

When the oracle runs (:meth:`CrystalGAN.score_oracle`): before the first epoch (the Stage II
generator, the run's starting level) and at the end of every epoch, after its last generator
step. ``oracle_samples`` images are generated from noise seeded by the epoch
(:meth:`CrystalGAN.oracle_seed`), decoded and scored in one oracle call; the reward model is
checked on them before it sees them (AUC and rank correlation per head,
:func:`~topogen.models.gan3.reward.reward_check`), then they join the buffer of all scored
samples (kept in the checkpoint) and the reward model is refit on it. The epoch's metrics
(fractions of its samples that are phonon-stable, insulating, both) therefore describe the
generator as the epoch ENDS, which is the generator that epoch's checkpoints hold: the
scoring runs in the hook after the epoch's last batch, before any epoch-end checkpoint is
written (``last.ckpt`` for resuming, the best epoch's). :attr:`CrystalGAN.history` keeps each
scoring (counts, fractions, reward check, a digest of the scored generator's weights).

The stage metric is the conjunction of the verdicts in use: "all" with a topology model
(stable, topological and, with a band-gap model, insulating), else "both" with a band-gap
model and "stable" without one; the best epoch by
it is the stage's output, and training stops after ``patience`` epochs without improvement
(paper: 50 cycles). The best of many noisy estimates overstates its own value, so
:mod:`topogen.models.gan3.train` re-scores the output on fresh samples (seeds no epoch used):
that is the metric of record, with a 90% binomial interval. Departures from the paper: the
reward model (a differentiable stand-in for its oracle discriminators), and the re-scoring.

Checkpoints hold plain hyper-parameters and tensors only (``weights_only=True`` loads
them); ``last.ckpt`` is written after every epoch, and an interrupted stage resumes from it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F

from topogen.errors import TopogenError
from topogen.models.gan3.networks import Critic, Generator
from topogen.models.gan3.oracle import VERDICTS, Oracle, OracleScores, OracleSettings
from topogen.models.gan3.reward import pos_weights, reward_check, reward_loss
from topogen.models.gan3.settings import STAGE_LR, GanSettings

SEED_STRIDE = 100_003  # oracle seeds of run seed s: s * SEED_STRIDE + 1 + epoch
RESCORE_OFFSET = 50_000  # ... and of its re-scoring: beyond any epoch
ORACLE_KEYS = ("decodable", "relaxed", *VERDICTS, "mean_stability")


class GanError(TopogenError):
    """Bad GAN input: missing labels, mismatched image shapes, unreadable checkpoints."""


def _bce(logits: torch.Tensor, target: float | torch.Tensor) -> torch.Tensor:
    target = torch.as_tensor(target, dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target.expand_as(logits))


class CrystalGAN(L.LightningModule):
    """Generator + discriminator (+ reward model in Stage III); see the module docstring.

    ``image_shape``: (rows, cols) of the crystal images; ``lr``: both Adam learning rates
    (None: the paper's per stage); ``oracle``: :class:`OracleSettings` as a dict;
    ``has_gap_model``: whether Stage III has a band-gap oracle (its reward head is used);
    ``has_topology_model``: whether it has a topology oracle (a third reward head).
    """

    def __init__(
        self,
        stage: int,
        image_shape: Sequence[int],
        noise_dim: int = GanSettings.noise_dim,
        width: int = GanSettings.width,
        lr: float | None = GanSettings.lr,
        adv_weight: float = GanSettings.adv_weight,
        reward_weight: float = GanSettings.reward_weight,
        stage3_discriminator: str = GanSettings.stage3_discriminator,
        reward_lr: float = GanSettings.reward_lr,
        reward_steps: int = GanSettings.reward_steps,
        oracle_samples: int = GanSettings.oracle_samples,
        oracle: dict[str, Any] | None = None,
        has_gap_model: bool = False,
        has_topology_model: bool = False,
        seed: int = GanSettings.seed,
    ) -> None:
        super().__init__()
        if stage not in (1, 2, 3):
            raise GanError(f"stage must be 1, 2 or 3, not {stage}")
        if stage3_discriminator not in ("train", "freeze"):
            raise GanError(
                f"stage3_discriminator must be 'train' or 'freeze', not {stage3_discriminator!r}"
            )
        rows, cols = (int(v) for v in image_shape)
        self.save_hyperparameters(
            {
                "stage": int(stage),
                "image_shape": [rows, cols],
                "noise_dim": int(noise_dim),
                "width": int(width),
                "lr": float(lr if lr is not None else STAGE_LR[stage]),
                "adv_weight": float(adv_weight),
                "reward_weight": float(reward_weight),
                "stage3_discriminator": str(stage3_discriminator),
                "reward_lr": float(reward_lr),
                "reward_steps": int(reward_steps),
                "oracle_samples": int(oracle_samples),
                "oracle": asdict(OracleSettings(**(oracle or {}))),
                "has_gap_model": bool(has_gap_model),
                "has_topology_model": bool(has_topology_model),
                "seed": int(seed),
            }
        )
        self.automatic_optimization = False
        self.generator = Generator(noise_dim, rows, cols, width)
        self.discriminator = Critic(rows, cols, width)
        n_heads = 3 if has_topology_model else 2  # stable, gap (, topology): reward.HEADS
        self.reward = Critic(rows, cols, width, heads=n_heads) if stage == 3 else None
        self.buffer_images = torch.zeros(0, rows, cols)
        self.buffer_scores = torch.zeros(0, n_heads)
        self.history: list[dict[str, Any]] = []  # Stage III: one record per oracle scoring
        self._oracle: dict[str, Any] = {}  # decoder and Oracle, attached for Stage III

    # --- set-up ------------------------------------------------------------------------------

    def attach_oracle(self, decoder: Any, oracle: Oracle) -> None:
        """The crystal autoencoder that decodes images and the :class:`Oracle` (Stage III)."""
        self._oracle = {"decoder": decoder, "oracle": oracle}

    def init_from(self, previous: CrystalGAN) -> None:
        """Start from the previous stage: its generator (Stage II), and its discriminator too
        (Stage III keeps Stage II's topology-aware one)."""
        if list(previous.hparams.image_shape) != list(self.hparams.image_shape):
            raise GanError(
                f"previous stage made images of shape {previous.hparams.image_shape}, "
                f"this one expects {self.hparams.image_shape}"
            )
        self.generator.load_state_dict(previous.generator.state_dict())
        if self.hparams.stage == 3:
            self.discriminator.load_state_dict(previous.discriminator.state_dict())

    def noise(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        return torch.randn(n, self.hparams.noise_dim, generator=g).to(self.device)

    # --- training ----------------------------------------------------------------------------

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        betas = (0.5, 0.999)
        opts = [
            torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas),
        ]
        if self.reward is not None:
            opts.append(torch.optim.Adam(self.reward.parameters(), lr=self.hparams.reward_lr))
        return opts

    def _real_targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Stage I: every real crystal is 1; Stages II/III: its topo2d label."""
        if self.hparams.stage == 1:
            return torch.ones_like(labels)
        return labels

    @property
    def frozen_discriminator(self) -> bool:
        """Stage III with ``stage3_discriminator="freeze"``: the discriminator is not trained
        (its loss is still logged); only the generator (and the reward model) learn."""
        return self.hparams.stage == 3 and self.hparams.get("stage3_discriminator") == "freeze"

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        real, labels = batch
        opts = self.optimizers()
        opt_g, opt_d = opts[0], opts[1]
        if self.frozen_discriminator:
            self.discriminator.eval()  # spectral norm's power iteration frozen too
        n = len(real)
        z = torch.randn(n, self.hparams.noise_dim, device=self.device)
        fake = self.generator(z)

        d_real, d_fake = self.discriminator(real)[:, 0], self.discriminator(fake.detach())[:, 0]
        d_loss = _bce(d_real, self._real_targets(labels)) + _bce(d_fake, 0.0)
        if not self.frozen_discriminator:
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()

        adv = _bce(self.discriminator(fake)[:, 0], 1.0)
        g_loss = self.hparams.adv_weight * adv if self.reward is not None else adv
        if self.reward is not None:
            g_loss = g_loss + self.hparams.reward_weight * self._reward_loss(fake)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()

        log = {"batch_size": n, "on_step": False, "on_epoch": True}
        self.log("d_loss", d_loss, prog_bar=True, **log)
        self.log("g_loss", g_loss, prog_bar=True, **log)
        self.log("g_adversarial", adv, **log)
        self.log("d_real", torch.sigmoid(d_real).mean(), **log)
        self.log("d_fake", torch.sigmoid(d_fake).mean(), **log)

    def _reward_heads(self) -> list[int]:
        """Columns of :data:`~topogen.models.gan3.reward.HEADS` with an oracle."""
        heads = [0]
        if self.hparams.has_gap_model:
            heads.append(1)
        if self.hparams.get("has_topology_model"):
            heads.append(2)
        return heads

    def _reward_loss(self, fake: torch.Tensor) -> torch.Tensor:
        logits = self.reward(fake)
        return sum(_bce(logits[:, h], 1.0) for h in self._reward_heads())

    # --- Stage III: oracle and reward model ---------------------------------------------------

    def on_train_epoch_start(self) -> None:
        if self.hparams.stage == 3 and not self.history:
            self.score_oracle(-1)  # the starting (Stage II) generator; seeds the buffer

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.hparams.stage != 3 or batch_idx + 1 != self.trainer.num_training_batches:
            return
        record = self.score_oracle(self.current_epoch)
        logged = {f"oracle_{k}": record[k] for k in ORACLE_KEYS} | {
            k: v for k, v in record.items() if k.startswith("reward_")
        }
        logged["stage_metric"] = record[self.stage_metric]
        for name, value in logged.items():
            self.log(name, float(value), on_step=False, on_epoch=True, batch_size=1)

    @property
    def stage_metric(self) -> str:
        """The oracle fraction Stage III selects by: "all" with a topology model, else "both"
        with a band-gap model, else "stable"."""
        if self.hparams.get("has_topology_model"):
            return "all"
        return "both" if self.hparams.has_gap_model else "stable"

    def oracle_seed(self, epoch: int) -> int:
        """Seed of the oracle samples scored at the end of ``epoch`` (-1: before the first)."""
        return self.hparams.seed * SEED_STRIDE + 1 + int(epoch)

    def rescore_seed(self) -> int:
        """Seed of the fresh samples that re-score a trained model: no epoch's seed."""
        return self.hparams.seed * SEED_STRIDE + RESCORE_OFFSET

    def score(self, n: int, seed: int) -> tuple[torch.Tensor, OracleScores]:
        """``n`` images from noise seeded by ``seed`` and the oracle's scores of them."""
        if not self._oracle:
            raise GanError("Stage III needs the decoder and the oracle (attach_oracle)")
        images = self.sample_images(n, seed)
        structures = self._oracle["decoder"].decode_many(images.cpu().numpy())
        return images, self._oracle["oracle"](structures)

    def score_oracle(self, epoch: int) -> dict[str, Any]:
        """Score the generator as it is now on the oracle samples of ``epoch``, check the
        reward model on them, add them to its buffer and refit it (module docstring);
        returns (and appends to :attr:`history`) the record of this scoring."""
        seed = self.oracle_seed(epoch)
        images, scores = self.score(self.hparams.oracle_samples, seed)
        targets = self.reward_targets(scores)
        verdicts = np.stack([scores.stable, scores.insulating, scores.topological], axis=1)
        predicted = self.predicted_reward(images).numpy()
        heads = self._reward_heads()
        check = reward_check(predicted, targets, verdicts[:, : targets.shape[1]], heads)
        self.add_scored(images, targets)
        fit_loss = self.fit_reward()
        summary = scores.summary()
        record: dict[str, Any] = {
            "epoch": int(epoch),
            "seed": seed,
            "n": len(images),
            **summary,
            "counts": scores.counts(),
            **check,
            "reward_fit_loss": fit_loss,
            "generator_sha256": generator_digest(self.generator),
        }
        self.history.append(record)
        return record

    @torch.no_grad()
    def sample_images(self, n: int, seed: int) -> torch.Tensor:
        """``n`` images from noise seeded by ``seed`` (generator in eval mode)."""
        was = self.generator.training
        self.generator.eval()
        images = self.generator(self.noise(n, seed)).float()
        self.generator.train(was)
        return images

    def reward_targets(self, scores: OracleScores) -> np.ndarray:
        """(B, heads) reward-model targets of oracle scores: stability, gap score (NaN: no
        band-gap model) and, with a topology head, the topology score."""
        columns = [scores.stability, scores.gap_score]
        if self.hparams.get("has_topology_model"):
            if scores.topology_score is None:
                raise GanError("the GAN has a topology head but the oracle no topology model")
            columns.append(scores.topology_score)
        return np.stack(columns, axis=1)

    def add_scored(self, images: torch.Tensor, targets: Any) -> None:
        """Append oracle-scored images and their (B, heads) :meth:`reward_targets` to the
        reward model's buffer."""
        scores = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
        if scores.shape != (len(images), self.buffer_scores.shape[1]):
            raise GanError(
                f"reward targets of shape {tuple(scores.shape)} for {len(images)} images and "
                f"{self.buffer_scores.shape[1]} reward heads"
            )
        self.buffer_images = torch.cat([self.buffer_images, images.detach().float().cpu()])
        self.buffer_scores = torch.cat([self.buffer_scores, scores])

    def fit_reward(self, steps: int | None = None, batch_size: int = 64) -> float:
        """``reward_steps`` Adam steps of the reward model on mini-batches of the whole
        buffer (class-weighted loss, :mod:`topogen.models.gan3.reward`); returns that loss on
        the whole buffer after the steps (the fit's training loss, not a held-out one)."""
        if self.reward is None or not len(self.buffer_images):
            return float("nan")
        opt = self.optimizers()[2] if self._trainer is not None else None
        if opt is None:
            opt = torch.optim.Adam(self.reward.parameters(), lr=self.hparams.reward_lr)
        weights = pos_weights(self.buffer_scores).to(self.device)
        g = torch.Generator().manual_seed(self.hparams.seed + len(self.buffer_images))
        self.reward.train()
        for _ in range(steps if steps is not None else self.hparams.reward_steps):
            idx = torch.randint(len(self.buffer_images), (batch_size,), generator=g)
            x = self.buffer_images[idx].to(self.device)
            y = self.buffer_scores[idx].to(self.device)
            loss = reward_loss(self.reward(x), y, weights)
            opt.zero_grad()
            if self._trainer is not None:
                self.manual_backward(loss)
            else:
                loss.backward()
            opt.step()
        self.reward.eval()  # frozen while the generator climbs it
        with torch.no_grad():
            logits = self.reward(self.buffer_images.to(self.device))
            return float(reward_loss(logits, self.buffer_scores.to(self.device), weights))

    @torch.no_grad()
    def predicted_reward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, heads) reward-model probabilities (stability, gap, topology) of images (eval mode: no
        spectral-norm power iteration, nothing changes)."""
        was = self.reward.training
        self.reward.eval()
        out = torch.sigmoid(self.reward(images.to(self.device).float())).cpu()
        self.reward.train(was)
        return out

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["oracle_buffer"] = {
            "images": self.buffer_images.clone(),
            "scores": self.buffer_scores.clone(),
        }
        checkpoint["oracle_history"] = [dict(r) for r in self.history]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        buf = checkpoint.get("oracle_buffer")
        if buf is not None:
            self.buffer_images, self.buffer_scores = buf["images"], buf["scores"]
        self.history = list(checkpoint.get("oracle_history", []))


def generator_digest(generator: torch.nn.Module) -> str:
    """sha256 of a generator's weights and buffers (names, dtypes, values, in order)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in generator.state_dict().items():
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_gan(path: str | os.PathLike[str]) -> CrystalGAN:
    """A :class:`CrystalGAN` from a checkpoint, read with ``weights_only=True``."""
    try:
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
        model = CrystalGAN(**ckpt["hyper_parameters"])
        model.load_state_dict(ckpt["state_dict"])
        model.on_load_checkpoint(ckpt)
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError) as exc:
        raise GanError(f"{path}: not a topogen GAN checkpoint ({exc})") from exc
    return model.eval()
