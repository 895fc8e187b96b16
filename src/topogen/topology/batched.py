"""Torch twins of the invariants, batched over models and k, with a degenerate-safe ``eigh``.

Same conventions as :mod:`topogen.topology.invariants` (periodic gauge, C = (1/2pi) int Omega
with A = i<u|grad u>, WCC = -arg(lambda)/2pi mod 1). Use float64/complex128 for invariants.
"""

from __future__ import annotations

import math

import torch

__all__ = ["bloch_hamiltonian", "chern_number", "eigh", "k_grid", "wannier_centres"]


class _Eigh(torch.autograd.Function):
    """``torch.linalg.eigh`` with a broadened backward.

    The backward replaces 1/(l_j - l_i) by (l_j - l_i)/((l_j - l_i)^2 + eps).

    At an exact degeneracy the bare formula divides by zero (NaN gradients); the broadened one
    drops the ill-defined rotations inside a degenerate subspace, which is exact for losses
    that do not depend on the basis chosen inside it (projectors, eigenvalue sums).
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        values, vectors = torch.linalg.eigh(a)
        ctx.save_for_backward(values, vectors)
        ctx.eps = eps
        return values, vectors

    @staticmethod
    def backward(ctx, g_values: torch.Tensor | None, g_vectors: torch.Tensor | None):
        values, vectors = ctx.saved_tensors
        vh = vectors.mH
        if g_vectors is None:
            inner = torch.zeros_like(vectors)
        else:
            vhgv = vh @ g_vectors
            vhgv = 0.5 * (vhgv - vhgv.mH)  # tangent space of U(n): skew-hermitian part
            gap = values.unsqueeze(-2) - values.unsqueeze(-1)  # [i, j] = l_j - l_i
            inner = vhgv * (gap / (gap * gap + ctx.eps)).to(vhgv.dtype)
        diagonal = torch.zeros_like(values) if g_values is None else g_values
        inner = inner - torch.diag_embed(inner.diagonal(dim1=-2, dim2=-1))
        inner = inner + torch.diag_embed(diagonal.to(inner.dtype))
        return vectors @ inner @ vh, None


def eigh(a: torch.Tensor, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and eigenvectors of hermitian ``a (..., n, n)``; finite gradients
    at degeneracies (see :class:`_Eigh`). Only the lower triangle of ``a`` is read, as in torch.
    """
    return _Eigh.apply(a, eps)


def k_grid(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The n x n grid of reduced k points (k1, k2, 0), shape ``(n, n, 3)``."""
    k = torch.arange(n, dtype=dtype) / n
    k1, k2 = torch.meshgrid(k, k, indexing="ij")
    return torch.stack([k1, k2, torch.zeros_like(k1)], dim=-1)


def bloch_hamiltonian(
    r_vectors: torch.Tensor, hoppings: torch.Tensor, k: torch.Tensor
) -> torch.Tensor:
    """H(k) = sum_R exp(2 pi i k.R) t(R): ``hoppings (..., nR, nw, nw)``, ``k (K..., 3)`` ->
    ``(..., K..., nw, nw)``; differentiable in ``hoppings`` (e.g. a network's output).
    """
    if hoppings.is_complex():
        ctype = hoppings.dtype
    else:
        ctype = torch.complex128 if hoppings.dtype == torch.float64 else torch.complex64
    k, r = k.to(torch.float64), r_vectors.to(device=k.device, dtype=torch.float64)
    phase = torch.exp(2j * math.pi * (k.reshape(-1, 3) @ r.T)).to(ctype)
    h = torch.einsum("kr,...rmn->...kmn", phase, hoppings.to(ctype))
    shape = k.shape[:-1]
    return h.reshape(*h.shape[:-3], *shape, *h.shape[-2:])


def _unit(z: torch.Tensor) -> torch.Tensor:
    return z / z.abs()


def chern_number(hk: torch.Tensor, nocc: int, eps: float = 1e-12) -> torch.Tensor:
    """FHS Chern number of the lowest ``nocc`` bands from ``hk (..., n, n, nw, nw)`` on the
    periodic n x n grid; returns ``(...)`` real values (integers up to round-off).
    """
    states = eigh(hk, eps)[1][..., :nocc]
    dims = (-4, -3)  # the two k axes of states (..., n, n, nw, nocc)

    def link(axis: int) -> torch.Tensor:
        shifted = torch.roll(states, -1, dims=dims[axis])
        return _unit(torch.linalg.det(states.mH @ shifted))

    u1, u2 = link(0), link(1)
    plaquette = u1 * torch.roll(u2, -1, dims=-2) * torch.roll(u1, -1, dims=-1).conj() * u2.conj()
    return -torch.angle(plaquette).sum(dim=(-2, -1)) / (2 * math.pi)


def wannier_centres(hk: torch.Tensor, nocc: int, eps: float = 1e-12) -> torch.Tensor:
    """Sorted Wilson-loop WCCs in [0, 1) of ``hk (..., n_k, nw, nw)``, sampled at k_j = j/n_k
    along the loop (periodic gauge); returns ``(..., nocc)``.
    """
    states = eigh(hk, eps)[1][..., :nocc]
    n_k = states.shape[-3]
    eye = torch.eye(nocc, dtype=states.dtype, device=states.device)
    wilson = eye.expand(*states.shape[:-3], nocc, nocc)
    for j in range(n_k):
        wilson = wilson @ (states[..., j, :, :].mH @ states[..., (j + 1) % n_k, :, :])
    wcc = torch.remainder(-torch.angle(torch.linalg.eigvals(wilson)) / (2 * math.pi), 1.0)
    return torch.sort(wcc, dim=-1).values
