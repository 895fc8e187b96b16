"""Every hyper-parameter of the three-stage GAN, each default stated once (config train.gan)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from topogen.models.gan3.oracle import OracleSettings

STAGE_LR = {1: 5e-4, 2: 2e-4, 3: 2e-4}  # the paper's learning rates


@dataclass
class GanSettings:
    """Training, network and Stage III settings of one GAN stage.

    ``lr``: both Adam learning rates (None: the paper's for the stage, :data:`STAGE_LR`);
    ``seed``: weights, batch order and the Stage III oracle samples; ``patience``: Stage III
    stops after this many epochs without a better stage metric (None: never);
    ``reward_weight`` 0: Stage III without the oracle's steer (the control, still scored);
    ``stage3_discriminator``: "train" keeps training the Stage II discriminator on the real
    images in Stage III (our choice, the default), "freeze" keeps it as Stage II left it, so
    Stage III uses no real data (the paper's setting);
    ``rescore_samples``: fresh samples that re-score Stage III's output after training
    (:func:`~topogen.models.gan3.train.rescore`; not a model hyper-parameter).
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float | None = None
    noise_dim: int = 64
    width: int = 32  # convolution channels
    seed: int = 0
    patience: int | None = None
    adv_weight: float = 1.0  # Stage III: weight of the adversarial term
    reward_weight: float = 1.0  # Stage III: weight of the reward-model term
    stage3_discriminator: str = "train"  # Stage III: "train" it on real data (ours) or "freeze" it
    reward_lr: float = 1e-3
    reward_steps: int = 50  # reward-model steps per epoch
    oracle_samples: int = 32  # samples decoded and scored per epoch
    rescore_samples: int = 128  # fresh samples that re-score the stage's model (of record)
    oracle: OracleSettings = field(default_factory=OracleSettings)

    def model_hparams(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~topogen.models.gan3.gan.CrystalGAN`."""
        names = ("noise_dim", "width", "lr", "adv_weight", "reward_weight", "reward_lr")
        names += ("stage3_discriminator",)
        names += ("reward_steps", "oracle_samples", "seed")
        return {**{k: getattr(self, k) for k in names}, "oracle": asdict(self.oracle)}
