"""Every hyper-parameter of a LoGAN ensemble member, each default stated once (config
train.logan). Where the paper gives a value it is used; the others are ours and say so."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

GENERATOR_HIDDEN = (512, 256, 128, 64, 32)  # the paper's generator MLP
CRITIC_HIDDEN = (256, 128, 64, 32)  # the paper's per-atom critic MLP


@dataclass
class LoganSettings:
    """Training and descriptor settings of one ensemble member (seed x hyper-parameter set).

    ``latent_dim``: the generator's noise (paper: 20); ``r_cut``/``n_max``/``l_max``/
    ``radial``/``max_neighbors``: the critic's local power spectrum (:class:`~topogen.
    encode.descriptors.PowerSpectrum`; the ensemble varies r_cut, n_max, the radial basis
    and, in the authors' SiO2 runs, the neighbours kept: 12 or 25 nearest; None: every
    neighbour within r_cut; the default basis is the authors' atom-centred Gaussians: with
    the SOAP-like shells, ``gaussian``, SiO2 generators collapsed onto overlapping atoms, and
    with our ``bessel`` (j0 only; the authors' Bessel basis is l-dependent) the water toy of
    the tests pushed its H atoms out of r_cut); ``n_critic``:
    critic steps per generator step; ``gp_weight``: the gradient penalty's lambda (WGAN-GP,
    Gulrajani et al. 2017: 10); ``lr``: both RMSProp learning rates (ours: 1e-3; at 2e-4 the
    generator of the triatomic test was still far off after 800 steps); ``steps``: generator
    steps per epoch; ``rattle`` (Angstrom) / ``copies``: Gaussian-rattled copies of every
    training structure whose environments join the real pool (ours: 0.05 A, 4 copies);
    ``span``: the fraction of the third cell vector the generator may fill (1 for bulk and
    molecules; less for a 2D layer in a vacuum cell); ``snapshots``: generators kept for
    sampling, evenly spaced over the epochs, the final one included (1: the final generator
    only, as the paper; more is ours: a snapshot ensemble, measured in bench/logan_c5h12o.py).
    """

    epochs: int = 20
    steps: int = 50
    batch_size: int = 32
    latent_dim: int = 20
    r_cut: float = 5.0
    n_max: int = 4
    l_max: int = 4
    radial: str = "centred"
    max_neighbors: int | None = None
    n_critic: int = 5
    gp_weight: float = 10.0
    lr: float = 1e-3
    rattle: float = 0.05
    copies: int = 4
    span: float = 1.0
    snapshots: int = 1
    seed: int = 0

    def model_hparams(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~topogen.models.logan.model.LoGAN` (all but
        the pool's settings: rattle, copies, epochs)."""
        skip = {"rattle", "copies", "epochs"}
        return {k: v for k, v in asdict(self).items() if k not in skip}
