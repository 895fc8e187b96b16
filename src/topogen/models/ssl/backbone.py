"""The equivariant backbone: PaiNN (Schuett, Unke, Gastegger, ICML 2021), small.

Every atom carries scalar features s (N, F) and vector features v (N, 3, F). Messages along
an edge i <- j use the edge vector r = x_j + shift - x_i through its length (radial basis
with a cosine cut-off) and its direction only, and vectors are only scaled and summed, so s
is invariant and v rotates with the input (tested to 1e-5). The species enter as a
distribution over the 118 elements plus the mask token (one-hot for real crystals; the GAN's
generator hands the discriminator soft distributions, which keeps it differentiable).

Ours: after every block a LayerNorm of the scalar features and a bound on the vector
features' length (both keep equivariance; a full RMS normalisation of the vectors, tried
too, halved the denoising). Without them the products in the update blocks
let features grow by orders of magnitude per block on geometries unlike the training
crystals (two atoms 0.1 A apart under the GAN's noise ratio 0.2): a pretrained model's
logits overflowed float32 on one batch of 16 of the C2DB subset.

Liu et al. used EquiformerV2 (too large for these machines). :data:`BACKBONES` maps a name
to a class with this interface (``forward(species, batch) -> (s, v)``, ``hidden``), so
another equivariant network can be plugged in.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from topogen.models.ssl.crystals import N_SPECIES, Batch


def _index_add(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    out = values.new_zeros((n, *values.shape[1:]))
    return out.index_add(0, index, values)


class RadialBasis(nn.Module):
    """sin(n pi d / rc) / d, n = 1..K, times a cosine cut-off."""

    def __init__(self, n_rbf: int, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("n", torch.arange(1, n_rbf + 1, dtype=torch.float32))

    def forward(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = d.unsqueeze(-1)
        rbf = torch.sin(self.n.to(d.dtype) * math.pi * d / self.cutoff) / d
        envelope = 0.5 * (torch.cos(math.pi * d / self.cutoff) + 1.0) * (d < self.cutoff)
        return rbf, envelope


class _Message(nn.Module):
    def __init__(self, f: int, n_rbf: int) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(f, f), nn.SiLU(), nn.Linear(f, 3 * f))
        self.w = nn.Linear(n_rbf, 3 * f)

    def forward(self, s, v, i, j, rbf, envelope, unit):  # type: ignore[no-untyped-def]
        x = self.phi(s)[j] * self.w(rbf) * envelope
        a, b, c = torch.chunk(x, 3, dim=-1)
        dv = b.unsqueeze(1) * v[j] + c.unsqueeze(1) * unit.unsqueeze(-1)
        return s + _index_add(a, i, len(s)), v + _index_add(dv, i, len(s))


class _Update(nn.Module):
    def __init__(self, f: int) -> None:
        super().__init__()
        self.u = nn.Linear(f, f, bias=False)
        self.v = nn.Linear(f, f, bias=False)
        self.mix = nn.Sequential(nn.Linear(2 * f, f), nn.SiLU(), nn.Linear(f, 3 * f))

    def forward(self, s, v):  # type: ignore[no-untyped-def]
        uv, vv = self.u(v), self.v(v)
        norm = torch.sqrt((vv * vv).sum(dim=1) + 1e-8)
        a_vv, a_sv, a_ss = torch.chunk(self.mix(torch.cat([s, norm], dim=-1)), 3, dim=-1)
        return s + a_sv * (uv * vv).sum(dim=1) + a_ss, v + a_vv.unsqueeze(1) * uv


VECTOR_LIMIT = 100.0  # rms length of an atom's vector features beyond which they are scaled


def _bounded(v: torch.Tensor) -> torch.Tensor:
    """Vector features scaled down to an rms length of :data:`VECTOR_LIMIT` per atom where
    they exceed it (an invariant factor, so equivariant; inert below the limit)."""
    rms = torch.sqrt((v * v).sum(dim=1).mean(dim=-1) + 1e-12)
    return v / torch.clamp(rms / VECTOR_LIMIT, min=1.0)[:, None, None]


class PaiNN(nn.Module):
    """``hidden`` features, ``layers`` message + update blocks on the graph of a
    :class:`~topogen.models.ssl.crystals.Batch`."""

    def __init__(self, hidden: int = 64, layers: int = 3, cutoff: float = 5.0, n_rbf: int = 16):
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Linear(N_SPECIES + 1, hidden, bias=False)  # + the mask token
        self.rbf = RadialBasis(n_rbf, cutoff)
        self.messages = nn.ModuleList(_Message(hidden, n_rbf) for _ in range(layers))
        self.updates = nn.ModuleList(_Update(hidden) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(2 * layers))

    def forward(
        self, species: torch.Tensor, batch: Batch, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``species`` (N, 119) distributions; ``positions`` default the batch's."""
        pos = batch.positions if positions is None else positions
        vec = pos[batch.j] + batch.shifts - pos[batch.i]
        d = torch.linalg.norm(vec, dim=-1)
        unit = vec / d.unsqueeze(-1)
        rbf, envelope = self.rbf(d)
        s = self.embed(species)
        v = s.new_zeros((len(s), 3, self.hidden))
        norms = iter(self.norms)
        for message, update in zip(self.messages, self.updates, strict=True):
            s, v = message(s, v, batch.i, batch.j, rbf, envelope, unit)
            s, v = next(norms)(s), _bounded(v)
            s, v = update(s, v)
            s, v = next(norms)(s), _bounded(v)
        return s, v


BACKBONES: dict[str, type[nn.Module]] = {"painn": PaiNN}


def make_backbone(name: str, **kwargs: int | float) -> nn.Module:
    from topogen.errors import TopogenError

    if name not in BACKBONES:
        raise TopogenError(f"unknown backbone {name!r} (known: {', '.join(BACKBONES)})")
    return BACKBONES[name](**kwargs)


def pool(s: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean of per-atom values ``s`` (N, ...) over each crystal (B, ...)."""
    total = _index_add(s, batch.graph, batch.size)
    counts = torch.bincount(batch.graph, minlength=batch.size).clamp(min=1)
    return total / counts.view(-1, *([1] * (s.dim() - 1))).to(s.dtype)
