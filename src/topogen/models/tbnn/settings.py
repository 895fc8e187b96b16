"""Every setting of the tight-binding network, each default stated once (config
``tbnn``; the paper's scale in ``config/paper.yaml``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from topogen.errors import TopogenError
from topogen.models.tbnn.potentials import VMAX

KINDS = {"step": "p6", "bhz": "p4"}  # data kind -> wallpaper group


@dataclass
class DataSettings:
    """Training data. ``kind``: ``step`` (the paper's main case: p6 step potentials of
    height ``vmax`` in -laplacian + V, energies in E0) or ``bhz`` (the Chern case: p4 QWZ
    supercells with two ``masses``, energies in units of the hopping, so ``vmax`` is 1).
    ``size``: pixels (step) or sites (bhz) per side of the image, the network's input;
    ``ecut`` (E0): plane-wave cut-off of the step solver (ours: 1200 E0, 85 plane waves at
    Gamma; against 2400 E0 the bands move by up to 2% of Vmax for the same potential, so
    data and benchmark use one discretisation); ``wedge``: intervals per side of the
    irreducible-wedge grid (p6, 12: 91 points, the paper had 79; p4, 8: 81 points);
    ``n_bands``: bands learnt (paper: 6); ``chern_grid``: FHS grid of the bhz Chern numbers."""

    kind: str = "step"
    size: int = 24
    ecut: float = 1200.0
    wedge: int = 12
    n_bands: int = 6
    vmax: float = VMAX
    masses: tuple[float, float] = (-1.0, 3.0)
    chern_grid: int = 12

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TopogenError(f"unknown tbnn data kind {self.kind!r} (expected step or bhz)")
        if self.kind == "bhz":
            self.vmax = 1.0

    @property
    def lattice(self) -> str:
        return KINDS[self.kind]


@dataclass
class NetworkSettings:
    """The network and its tight-binding model. ``orbitals``: irreps at 1a (ours: two s,
    two p, two d, one f: enough sectors for every symmetry content of the lowest six bands
    seen in 300 random potentials, except 8 with three C3 label-1 bands at K and 22 with
    four C2-odd bands at M... which two p's cover); ``radius``: hopping range (units of a);
    ``channels``/``hidden``/``dropout``: convolutional and dense layers; ``lr``/``epochs``/
    ``batch_size``: Adam; ``label_weight``: r, the weight of the per-irrep-block losses at
    the high-symmetry points against the band loss (paper: r ~ 1), multiplied by
    ``late_factor`` for the last ``late_fraction`` of the epochs (the paper lowered r
    late)."""

    orbitals: str = "s s p p d d f"
    radius: float = 2.0
    channels: tuple[int, ...] = (16, 32, 64)
    hidden: tuple[int, ...] = (512, 256)
    dropout: float = 0.1
    lr: float = 1e-3
    epochs: int = 60
    batch_size: int = 64
    label_weight: float = 1.0
    late_factor: float = 0.1
    late_fraction: float = 0.25
    seed: int = 0

    def hparams(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("epochs", "batch_size")}
