"""Differentiable atom-centred power-spectrum descriptors (SOAP-like), for the LoGAN critic.

LoGAN (Kovacs et al., 2024) scores generated structures with a per-atom critic on local
descriptors that must be differentiable with respect to atomic positions and the cell. Here
the neighbour density of each species around atom i is a sum of points,
``rho_i^s(r) = sum_{j in s} fc(r_ij) delta(r - r_ij)``, expanded in a radial basis ``R_n``
times real spherical harmonics ``Y_lm``:

    c_{i,s,n,lm} = sum_{j in s} fc(r_ij) R_n(r_ij) Y_lm(r_ij / |r_ij|),

and the rotationally invariant power spectrum is
``p_{i,(s n),(s' n'),l} = sum_m c_{i,s,n,lm} c_{i,s',n',lm}`` (Bartok, Kondor & Csanyi,
PRB 87, 184115, 2013; with point densities as in ACE, Drautz, PRB 99, 014104, 2019).
``fc(r) = (1 + cos(pi r / r_cut)) / 2`` makes it smooth as neighbours cross ``r_cut``.

Radial bases (``radial=``): ``"gaussian"``, shells ``exp(-(r - mu_n)^2 / (2 sigma^2))``
with ``mu_n = r_cut n / (n_max + 1)`` (n = 1..n_max; SOAP-like); ``"centred"``, the
atom-centred Gaussians of the LoGAN authors' code, ``exp(-r^2 / d_n^2) - exp(-r_cut^2 /
d_n^2)`` with widths ``d_n`` evenly spaced from 1 A to ``r_cut`` (largest at r = 0, so a
neighbour on top of an atom is far from any bonded environment; the shells barely tell
r = 0 from a bond length); ``"bessel"``, the zeroth-order spherical Bessel functions
``sqrt(2 / r_cut) sin(n pi r / r_cut) / r`` (n = 1..n_max; DimeNet, Gasteiger et al.,
ICLR 2020). Every basis is multiplied by ``fc``. Neighbour pairs come from
:func:`topogen.encode.graphs.neighbor_list` (numpy, no gradient); displacements are rebuilt
in torch as ``pos[j] - pos[i] + offset @ cell`` so autograd reaches positions and cell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import torch

from topogen.encode import EncodingError
from topogen.encode.elements import MAX_Z
from topogen.encode.graphs import neighbor_list, structure_arrays

Radial = Literal["gaussian", "centred", "bessel"]
RADIAL_BASES: tuple[str, ...] = get_args(Radial)


def real_spherical_harmonics(unit: torch.Tensor, l_max: int) -> torch.Tensor:
    """Orthonormal real spherical harmonics of unit vectors: (E, 3) -> (E, (l_max + 1)^2).

    Column ``l * l + l + m`` holds ``Y_lm`` (m = -l..l; no Condon-Shortley phase). Built as
    polynomials in x, y, z (associated Legendre recursion in z times Re/Im of (x + iy)^m),
    so they and their gradients are finite everywhere on the sphere.
    """
    x, y, z = unit.unbind(-1)
    cos_m, sin_m = [torch.ones_like(x)], [torch.zeros_like(x)]
    for _ in range(l_max):
        c, s = cos_m[-1], sin_m[-1]
        cos_m.append(x * c - y * s)
        sin_m.append(x * s + y * c)
    out: list[torch.Tensor | None] = [None] * (l_max + 1) ** 2
    for m in range(l_max + 1):
        q_prev = torch.full_like(z, float(math.prod(range(1, 2 * m, 2))))  # (2m-1)!!
        q_prev2 = torch.zeros_like(z)
        for l in range(m, l_max + 1):  # noqa: E741
            if l == m + 1:
                q = (2 * m + 1) * z * q_prev
            elif l > m + 1:
                q = ((2 * l - 1) * z * q_prev - (l + m - 1) * q_prev2) / (l - m)
            else:
                q = q_prev
            norm = math.sqrt(
                (2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m)
            )
            if m == 0:
                out[l * l + l] = norm * q
            else:
                out[l * l + l + m] = math.sqrt(2.0) * norm * q * cos_m[m]
                out[l * l + l - m] = math.sqrt(2.0) * norm * q * sin_m[m]
            if l > m:
                q_prev2, q_prev = q_prev, q
    return torch.stack(out, dim=-1)  # type: ignore[arg-type]


def cosine_cutoff(r: torch.Tensor, r_cut: float) -> torch.Tensor:
    """``(1 + cos(pi r / r_cut)) / 2`` inside ``r_cut``, 0 outside (smooth to first order)."""
    return torch.where(r < r_cut, 0.5 * (torch.cos(math.pi * r / r_cut) + 1.0), torch.zeros_like(r))


class PowerSpectrum(torch.nn.Module):
    """SOAP-like power spectrum per atom; see the module docstring for the definition.

    ``species``: the atomic numbers that get density channels (others raise). Output width
    ``dim = K (K + 1) / 2 * (l_max + 1)`` with ``K = len(species) * n_max``. ``max_neighbors``
    truncates each neighbourhood to the nearest atoms (makes the descriptor discontinuous;
    default: no truncation). ``normalize`` scales each atom's vector to unit length.
    """

    def __init__(
        self,
        species: Sequence[int],
        r_cut: float = 5.0,
        n_max: int = 6,
        l_max: int = 4,
        radial: Radial = "gaussian",
        sigma: float | None = None,
        max_neighbors: int | None = None,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if radial not in RADIAL_BASES:
            raise EncodingError(f"radial must be one of {', '.join(RADIAL_BASES)}, not {radial!r}")
        self.species = tuple(sorted({int(z) for z in species}))
        if not self.species or self.species[0] < 1 or self.species[-1] > MAX_Z:
            raise EncodingError(f"species must be atomic numbers in 1..{MAX_Z}")
        self.r_cut, self.n_max, self.l_max = float(r_cut), int(n_max), int(l_max)
        self.radial = radial
        self.sigma = float(sigma) if sigma is not None else self.r_cut / (self.n_max + 1)
        self.max_neighbors, self.normalize = max_neighbors, normalize
        lookup = torch.full((MAX_Z + 1,), -1, dtype=torch.long)
        lookup[list(self.species)] = torch.arange(len(self.species))
        self.register_buffer("_channel", lookup, persistent=False)
        k = len(self.species) * self.n_max
        rows, cols = torch.triu_indices(k, k)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)

    @property
    def dim(self) -> int:
        k = len(self.species) * self.n_max
        return k * (k + 1) // 2 * (self.l_max + 1)

    def radial_basis(self, r: torch.Tensor) -> torch.Tensor:
        """(E,) distances -> (E, n_max) radial functions (without the cutoff)."""
        if self.radial == "gaussian":
            mu = (
                self.r_cut
                * torch.arange(1, self.n_max + 1, dtype=r.dtype, device=r.device)
                / (self.n_max + 1)
            )
            return torch.exp(-((r[:, None] - mu) ** 2) / (2 * self.sigma**2))
        if self.radial == "centred":
            width = torch.linspace(1.0, self.r_cut, self.n_max, dtype=r.dtype, device=r.device)
            return torch.exp(-((r[:, None] / width) ** 2)) - torch.exp(-((self.r_cut / width) ** 2))
        n = torch.arange(1, self.n_max + 1, dtype=r.dtype, device=r.device)
        # sin(n pi r / rc) / r == (n pi / rc) sinc(n r / rc), finite at r = 0
        return (
            math.sqrt(2 / self.r_cut)
            * (n * math.pi / self.r_cut)
            * torch.sinc(n * r[:, None] / self.r_cut)
        )

    def neighbors(
        self,
        pos: torch.Tensor,
        cell: torch.Tensor | None,
        batch: torch.Tensor,
        pbc: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(i, j, offsets) over the concatenated atoms, from the detached geometry; all
        non-periodic structures (molecules) in one call (for periodic ones, one call each
        is faster: a shared call would pair every atom with every image of the others)."""
        pos_np = pos.detach().cpu().numpy().astype(np.float64)
        batch_np = batch.cpu().numpy()
        pbc_np = pbc.cpu().numpy()
        cells = None if cell is None else cell.detach().cpu().numpy().astype(np.float64)
        shared: dict[int, list[int]] = {}
        for b in range(len(pbc_np)):
            shared.setdefault(b if pbc_np[b].any() else -1, []).append(b)
        parts = []
        for members in shared.values():
            idx = np.flatnonzero(np.isin(batch_np, members))
            periodic = pbc_np[members[0]]
            nl = neighbor_list(
                cells[members[0]] if periodic.any() and cells is not None else None,
                pos_np[idx],
                self.r_cut,
                self.max_neighbors,
                periodic,
                cartesian=True,
                groups=batch_np[idx],
            )
            parts.append((idx[nl.i], idx[nl.j], nl.offsets))
        i, j, off = (np.concatenate([p[k] for p in parts]) for k in range(3))
        return (
            torch.as_tensor(i, device=pos.device),
            torch.as_tensor(j, device=pos.device),
            torch.as_tensor(off, device=pos.device),
        )

    def forward(
        self,
        pos: torch.Tensor,
        numbers: torch.Tensor | Sequence[int],
        cell: torch.Tensor | None = None,
        batch: torch.Tensor | None = None,
        pbc: bool | Sequence[bool] | torch.Tensor = True,
        neighbors: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Descriptors (N, dim) of concatenated atoms.

        ``pos`` (N, 3) Cartesian; ``cell`` (B, 3, 3) or (3, 3), rows are lattice vectors
        (None for molecules); ``batch`` (N,) structure index (None: one structure); ``pbc``
        a bool, (3,) or (B, 3). ``neighbors`` reuses a list from :meth:`neighbors`.
        """
        n_atoms = pos.shape[0]
        if batch is None:
            batch = torch.zeros(n_atoms, dtype=torch.long, device=pos.device)
        n_struct = int(batch.max()) + 1 if n_atoms else 0
        if cell is not None and cell.dim() == 2:
            cell = cell.unsqueeze(0)
        pbc_t = torch.as_tensor(pbc, dtype=torch.bool).cpu()
        pbc_t = (pbc_t.repeat(3) if pbc_t.dim() == 0 else pbc_t).reshape(-1, 3)
        pbc_t = pbc_t.expand(n_struct, 3)
        if cell is None and bool(pbc_t.any()):
            raise EncodingError("PowerSpectrum: periodic structures need a cell")
        numbers = torch.as_tensor(numbers, dtype=torch.long, device=pos.device)
        unknown = (numbers < 0) | (numbers > MAX_Z)
        channel = torch.where(unknown, -1, self._channel[numbers.clamp(0, MAX_Z)])
        if bool((channel < 0).any()):
            bad = sorted(set(numbers[channel < 0].tolist()))
            raise EncodingError(
                f"PowerSpectrum: atomic number(s) {bad} not in species {list(self.species)}"
            )
        i, j, off = neighbors if neighbors is not None else self.neighbors(pos, cell, batch, pbc_t)
        vec = pos[j] - pos[i]
        if cell is not None and off.numel():
            vec = vec + torch.einsum("ek,ekx->ex", off.to(pos.dtype), cell[batch[i]])
        r = vec.norm(dim=-1)
        weight = cosine_cutoff(r, self.r_cut)[:, None] * self.radial_basis(r)  # (E, n)
        ylm = real_spherical_harmonics(vec / r[:, None], self.l_max)  # (E, LM)
        n_species = len(self.species)
        coeff = pos.new_zeros(n_atoms * n_species, self.n_max, ylm.shape[1])
        coeff = coeff.index_add(0, i * n_species + channel[j], weight[:, :, None] * ylm[:, None])
        coeff = coeff.reshape(n_atoms, n_species * self.n_max, -1)
        blocks = []
        for l in range(self.l_max + 1):  # noqa: E741
            c_l = coeff[:, :, l * l : (l + 1) ** 2]
            gram = torch.einsum("akm,abm->akb", c_l, c_l)
            blocks.append(gram[:, self._rows, self._cols])
        out = torch.cat(blocks, dim=-1)
        if self.normalize:
            out = out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return out

    def encode(
        self, structures: Sequence[Any], dtype: torch.dtype = torch.float64
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(descriptors (N, dim), batch (N,)) for pymatgen Structures/Molecules or ASE Atoms."""
        arrays = [structure_arrays(s) for s in structures]
        pos = torch.as_tensor(np.concatenate([a[1] for a in arrays]), dtype=dtype)
        numbers = torch.as_tensor(np.concatenate([a[2] for a in arrays]))
        cell = torch.as_tensor(
            np.stack([np.zeros((3, 3)) if a[0] is None else a[0] for a in arrays]), dtype=dtype
        )
        pbc = torch.as_tensor(np.stack([a[3] for a in arrays]))
        batch = torch.repeat_interleave(
            torch.arange(len(arrays)), torch.as_tensor([len(a[2]) for a in arrays])
        )
        with torch.no_grad():
            return self(pos, numbers, cell, batch, pbc), batch
