"""Crystal images: per-element site voxel grids and a lattice voxel grid, and back.

The representation of the three-stage GAN (Tyner 2025), which follows CCDCGAN (Long et al.,
npj Comput. Mater. 7, 66, 2021) and iMatGen (Noh et al., Matter 1, 1370, 2019): a crystal
becomes one voxel grid of its sites per element plus one voxel grid of its lattice; 3D-conv
autoencoders (:mod:`topogen.models.autoencoder`) compress each grid to a vector.

Element grids (``grid^3`` voxels, one per element present, stored sparsely with
their atomic numbers): voxel ``(i, j, k)`` sits at fractional coordinates ``(i, j, k) / grid``
of the unit cell, and each site adds a Gaussian of width ``sigma`` **in voxels** (isotropic in
index space, so equally sharp along every axis whatever the cell), summed over periodic images,
so an atom at fractional 0.99 also puts density at 0.0. A lone atom's peak is 1. Supported
elements: Z = 1..84 without the noble gases (:data:`VOXEL_ELEMENTS`, 79 elements).

Lattice grid (``lattice_grid^3`` voxels, 2 channels): a Gaussian of width
``lattice_sigma`` voxels at the point ``(ln a, ln b, ln c)`` of a fixed box of log-lengths
(channel 0, ranges :attr:`VoxelSpec.length_range`) and one at ``(alpha, beta, gamma)`` in a
fixed box of angles (channel 1, :attr:`VoxelSpec.angle_range`). This departs from iMatGen,
which draws the lattice points of the cell in one fixed Cartesian box: a box that holds the
c axis of a 2D cell (20-40 Angstrom with its vacuum) leaves an in-plane vector of 3 Angstrom a
few voxels long, and at 16^3 a 0.3-voxel error of the autoencoder would move gamma by
about 5 degrees, the whole angle tolerance of pymatgen's StructureMatcher. In parameter space
each voxel is a fixed *relative* step of the lengths (the log box) and a fixed step of the
angles, and decoding is one peak per channel.

2D crystals keep their vacuum axis: c stays the vacuum axis, the element grids span the whole
cell (vacuum included), so the layer fills a slab of fractional height ``thickness / c``, and
the vacuum length is ``c - thickness``, with c read from the lattice grid. Lattices are
rebuilt with :meth:`pymatgen.core.Lattice.from_parameters`, which puts c along z and, when
alpha = beta = 90 degrees, a and b in the xy plane.

Widths. iMatGen and CCDCGAN used 32^3 grids, with a Gaussian width of about 0.15 in units
that do not carry over to a fractional grid; here widths are in voxels, so a blob looks the
same along every axis whatever the cell. Site sigma: 1 voxel at 32^3 (:data:`PAPER_LIKE`),
0.75 voxel at 16^3 (:data:`SMALL`): narrow enough that two sites of one element about 2.5
sigma apart still give two peaks (the S pair of a MoS2 monolayer is 2.4 voxels apart along c
at 16^3), wide enough that an atom between voxels keeps a peak well above the threshold.
Lattice sigma: 2.5 (16^3) or 3 (32^3) voxels: the lattice grid holds one blob per channel,
and a wide blob lets its autoencoder learn sub-voxel positions several times faster (the
peak read-out is exact at any width).

Decoding: per element channel, periodic local maxima (3x3x3) above ``threshold``; each is
refined to sub-voxel precision by a parabola through the logarithms of the peak and its two
neighbours along each axis (exact for a Gaussian); when several sites of one element overlap,
the Gaussians of the others are subtracted first (a few fixed-point rounds). Two sites of one
element closer than about ``2.5 sigma`` voxels merge into one peak and cannot be told apart.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from topogen.encode import EncodingError

MAX_VOXEL_Z = 84
NOBLE_GASES = (2, 10, 18, 36, 54)
VOXEL_ELEMENTS: tuple[int, ...] = tuple(
    z for z in range(1, MAX_VOXEL_Z + 1) if z not in NOBLE_GASES
)
LATTICE_CHANNELS = 2  # (ln a, ln b, ln c) and (alpha, beta, gamma)
_SUPPORTED = np.zeros(MAX_VOXEL_Z + 2, dtype=bool)
_SUPPORTED[list(VOXEL_ELEMENTS)] = True


def _symbol(z: int) -> str:
    from pymatgen.core import Element

    try:
        return Element.from_Z(int(z)).symbol
    except ValueError:
        return f"Z={z}"


def check_voxel_elements(numbers: Any) -> np.ndarray:
    """Atomic numbers as int64; EncodingError naming any element the images cannot hold."""
    z = np.asarray(numbers, dtype=np.int64).reshape(-1)
    bad = sorted({int(v) for v in z if v < 1 or v > MAX_VOXEL_Z or not _SUPPORTED[v]})
    if bad:
        names = ", ".join(f"{_symbol(v)} (Z={v})" for v in bad)
        raise EncodingError(
            f"unsupported element(s) {names}: crystal images encode Z = 1..{MAX_VOXEL_Z} "
            "without the noble gases"
        )
    return z


@dataclass(frozen=True)
class VoxelSpec:
    """Grid sizes, Gaussian widths, lattice box and peak threshold of the crystal images.

    ``grid``/``sigma``: element grids (voxels per axis; Gaussian width in voxels).
    ``lattice_grid``/``lattice_sigma``: the lattice grid (``None``: same as the element grid).
    ``length_range``: (min, max) Angstrom of a, b and c (log box); ``angle_range``: degrees.
    ``threshold``: smallest peak height read back as a site (a lone atom's peak is 1; an atom
    half-way between voxels still gives ``exp(-3 / (8 sigma^2))``, 0.69 at sigma = 1).
    """

    grid: int = 16
    sigma: float = 0.75
    lattice_grid: int | None = None
    lattice_sigma: float = 2.5
    length_range: tuple[tuple[float, float], ...] = ((1.5, 16.0), (1.5, 16.0), (1.5, 48.0))
    angle_range: tuple[float, float] = (30.0, 150.0)
    threshold: float = 0.3

    def __post_init__(self) -> None:
        if self.grid < 4 or self.lattice_size < 4:
            raise EncodingError("voxel grids need at least 4 voxels per axis")
        if self.sigma <= 0 or self.lattice_sigma <= 0:
            raise EncodingError("Gaussian widths must be positive")
        object.__setattr__(
            self, "length_range", tuple(tuple(map(float, r)) for r in self.length_range)
        )
        object.__setattr__(self, "angle_range", tuple(map(float, self.angle_range)))

    @property
    def lattice_size(self) -> int:
        return self.grid if self.lattice_grid is None else self.lattice_grid

    def as_dict(self) -> dict[str, Any]:
        """Plain (JSON- and weights_only-safe) dict; ``VoxelSpec(**d)`` rebuilds it."""
        d = asdict(self)
        d["length_range"] = [list(r) for r in self.length_range]
        d["angle_range"] = list(self.angle_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VoxelSpec:
        return cls(**d)


MAX_SITES = 64  # sites per decoded cell; more means noise, not a crystal (C2DB: <= 20 atoms)
SMALL = VoxelSpec(grid=16, sigma=0.75)
PAPER_LIKE = VoxelSpec(grid=32, sigma=1.0, lattice_sigma=3.0)


@dataclass
class CrystalVoxels:
    """One crystal as images: lattice grid (2, L, L, L), element grids (k, G, G, G) and their
    atomic numbers (k,), sorted by Z."""

    lattice: np.ndarray
    numbers: np.ndarray
    elements: np.ndarray
    spec: VoxelSpec = field(default_factory=VoxelSpec)


# --- encoding --------------------------------------------------------------------------------


def _periodic_profiles(u: np.ndarray, grid: int, sigma: float) -> np.ndarray:
    """(n,) positions in voxel units -> (n, grid) periodic 1D Gaussians (sum over images)."""
    idx = np.arange(grid, dtype=np.float64)
    reach = math.ceil(5 * sigma / grid)
    shifts = np.arange(-reach, reach + 1) * grid
    d = idx[None, None, :] - u[:, None, None] - shifts[None, :, None]
    return np.exp(-(d**2) / (2 * sigma**2)).sum(axis=1)


def site_grid(frac_coords: Any, grid: int, sigma: float) -> np.ndarray:
    """(grid, grid, grid) float32 density of sites at ``frac_coords`` (n, 3), periodic."""
    f = np.asarray(frac_coords, dtype=np.float64).reshape(-1, 3)
    u = np.mod(f, 1.0) * grid
    px, py, pz = (_periodic_profiles(u[:, k], grid, sigma) for k in range(3))
    return np.einsum("ni,nj,nk->ijk", px, py, pz, optimize=True).astype(np.float32)


def _blob(u: np.ndarray, grid: int, sigma: float) -> np.ndarray:
    idx = np.arange(grid, dtype=np.float64)
    p = [np.exp(-((idx - u[k]) ** 2) / (2 * sigma**2)) for k in range(3)]
    return np.einsum("i,j,k->ijk", *p).astype(np.float32)


def _lattice_coords(params: np.ndarray, spec: VoxelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Lattice parameters -> voxel coordinates of the length and angle blobs."""
    n = spec.lattice_size - 1
    lo = np.log([r[0] for r in spec.length_range])
    hi = np.log([r[1] for r in spec.length_range])
    a0, a1 = spec.angle_range
    return (np.log(params[:3]) - lo) / (hi - lo) * n, (params[3:] - a0) / (a1 - a0) * n


def lattice_grid(lattice: Any, spec: VoxelSpec = SMALL) -> np.ndarray:
    """(2, L, L, L) float32 lattice image of a pymatgen Lattice (or its 6 parameters)."""
    params = np.asarray(getattr(lattice, "parameters", lattice), dtype=np.float64)
    names = ("a", "b", "c")
    for k, (lo, hi) in enumerate(spec.length_range):
        if not lo <= params[k] <= hi:
            raise EncodingError(
                f"lattice {names[k]} = {params[k]:.3f} A outside the lattice box {lo:g}-{hi:g} A"
            )
    lo, hi = spec.angle_range
    if not ((params[3:] >= lo) & (params[3:] <= hi)).all():
        angles = ", ".join(f"{v:.2f}" for v in params[3:])
        raise EncodingError(f"lattice angles ({angles}) outside the box {lo:g}-{hi:g} degrees")
    ul, ua = _lattice_coords(params, spec)
    g, s = spec.lattice_size, spec.lattice_sigma
    return np.stack([_blob(ul, g, s), _blob(ua, g, s)])


def _structure_parts(structure: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    if not hasattr(structure, "lattice"):
        raise EncodingError("crystal images need a periodic structure (got a molecule)")
    if not getattr(structure, "is_ordered", True):
        raise EncodingError(
            f"{structure.composition.reduced_formula}: disordered sites "
            "(partial occupancies) cannot be encoded"
        )
    numbers = check_voxel_elements([site.specie.Z for site in structure])
    return structure.lattice, numbers, np.asarray(structure.frac_coords)


def element_grids(structure: Any, spec: VoxelSpec = SMALL) -> tuple[np.ndarray, np.ndarray]:
    """(atomic numbers (k,), grids (k, G, G, G)) of the elements present, sorted by Z."""
    _, numbers, frac = _structure_parts(structure)
    present = np.unique(numbers)
    grids = np.stack([site_grid(frac[numbers == z], spec.grid, spec.sigma) for z in present])
    return present, grids


def voxelize(structure: Any, spec: VoxelSpec = SMALL) -> CrystalVoxels:
    """A pymatgen Structure as crystal images (see the module docstring)."""
    lattice, _, _ = _structure_parts(structure)
    numbers, grids = element_grids(structure, spec)
    return CrystalVoxels(lattice_grid(lattice, spec), numbers, grids, spec)


# --- decoding --------------------------------------------------------------------------------


def _refine(lm: float, l0: float, lp: float) -> float:
    """Sub-voxel offset of the vertex of the parabola through (-1, lm), (0, l0), (1, lp)."""
    den = lm - 2 * l0 + lp
    if den >= -1e-12:
        return 0.0
    return float(np.clip(0.5 * (lm - lp) / den, -0.5, 0.5))


def _gaussians_at(points: np.ndarray, centres: np.ndarray, shape: np.ndarray, sigma: float):
    """(P, C) values of unit Gaussians at ``centres`` seen from voxel ``points`` (periodic)."""
    d = points[:, None, :] - centres[None, :, :]
    d -= shape * np.rint(d / shape)
    return np.exp(-(d**2).sum(-1) / (2 * sigma**2))


def _deblend(
    g: np.ndarray, voxels: np.ndarray, pos: np.ndarray, sigma: float, rounds: int = 6
) -> np.ndarray:
    """Refine peak positions with the Gaussians of the other peaks subtracted.

    The log-parabola is exact for one Gaussian; two sites of one element a few voxels apart
    pull each other's maxima inwards. Each round models every peak as a Gaussian of width
    ``sigma`` and of the height read at its voxel, subtracts the others from the 7 values the
    parabolas use, and refits (a fixed-point iteration, converged in a few rounds)."""
    shape = np.array(g.shape)
    steps = np.vstack(
        [np.zeros(3, dtype=np.int64), np.eye(3, dtype=np.int64), -np.eye(3, dtype=np.int64)]
    )
    pts = (voxels[:, None, :] + steps[None]) % shape  # (n, 7, 3)
    vals = g[tuple(pts.reshape(-1, 3).T)].reshape(len(voxels), 7)
    pos = pos.copy()
    for _ in range(rounds):
        unit = _gaussians_at(voxels.astype(np.float64), pos, shape, sigma)  # (n, n)
        amp = np.maximum(vals[:, 0], 1e-12) / np.maximum(np.diag(unit), 1e-12)
        new = pos.copy()
        for i in range(len(voxels)):
            others = np.arange(len(voxels)) != i
            near = pts[i].astype(np.float64)
            model = _gaussians_at(near, pos[others], shape, sigma) @ amp[others]
            res = np.log(np.maximum(vals[i] - model, 1e-12))
            for ax in range(3):
                new[i, ax] = voxels[i, ax] + _refine(res[4 + ax], res[0], res[1 + ax])
        pos = np.mod(new, shape)
    return pos


def find_peaks(
    grid: Any, threshold: float = 0.3, periodic: bool = True, sigma: float | None = None
) -> np.ndarray:
    """(n, 3) sub-voxel positions (voxel units) of the local maxima above ``threshold``,
    highest first; 3x3x3 neighbourhoods wrap around when ``periodic``. Plateaus (maxima
    closer than 1 voxel) are merged into the highest one. With ``sigma`` (periodic grids),
    overlapping Gaussians are deblended (see :func:`_deblend`)."""
    from scipy.ndimage import maximum_filter

    g = np.asarray(grid, dtype=np.float64)
    mode = "wrap" if periodic else "constant"
    peak = (g >= maximum_filter(g, size=3, mode=mode, cval=-np.inf)) & (g > threshold)
    idx = np.argwhere(peak)
    idx = idx[np.argsort(-g[tuple(idx.T)], kind="stable")]
    shape = np.array(g.shape)
    logs = np.log(np.maximum(g, 1e-12))
    out: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    for p in idx:
        pos = p.astype(np.float64)
        for ax in range(3):
            lo, hi = p.copy(), p.copy()
            lo[ax] -= 1
            hi[ax] += 1
            if periodic:
                lo[ax] %= shape[ax]
                hi[ax] %= shape[ax]
            elif lo[ax] < 0 or hi[ax] >= shape[ax]:
                continue
            pos[ax] += _refine(logs[tuple(lo)], logs[tuple(p)], logs[tuple(hi)])
        if periodic:
            pos %= shape
        keep = True
        for q in out:
            d = pos - q
            if periodic:
                d -= shape * np.rint(d / shape)
            if np.linalg.norm(d) < 1.0:
                keep = False
                break
        if keep:
            out.append(pos)
            kept.append(p)
    pos = np.array(out, dtype=np.float64).reshape(-1, 3)
    if sigma is not None and periodic and 1 < len(pos) <= MAX_SITES:
        pos = _deblend(g, np.array(kept, dtype=np.int64), pos, sigma)
    return pos


def _lattice_peak(channel: np.ndarray) -> np.ndarray:
    """Highest voxel, refined by a log-parabola through three voxels along each axis (moved
    inwards at the faces of the box, which a Gaussian's log allows: it is exactly quadratic)."""
    g = np.asarray(channel, dtype=np.float64)
    p = np.array(np.unravel_index(int(np.argmax(g)), g.shape))
    logs = np.log(np.maximum(g, 1e-12))
    pos = p.astype(np.float64)
    for ax in range(3):
        mid = min(max(p[ax], 1), g.shape[ax] - 2)
        three = []
        for k in (mid - 1, mid, mid + 1):
            q = p.copy()
            q[ax] = k
            three.append(logs[tuple(q)])
        den = three[0] - 2 * three[1] + three[2]
        if den < -1e-12:
            pos[ax] = mid + float(np.clip(0.5 * (three[0] - three[2]) / den, -1.5, 1.5))
    return pos


def lattice_parameters(grid: Any, spec: VoxelSpec = SMALL) -> tuple[float, ...]:
    """(a, b, c, alpha, beta, gamma) from a lattice grid (2, L, L, L): the highest voxel of
    each channel, refined to sub-voxel precision."""
    grid = np.asarray(grid)
    if grid.shape != (LATTICE_CHANNELS, *(spec.lattice_size,) * 3):
        raise EncodingError(
            f"lattice grid of shape {grid.shape}, expected "
            f"{(LATTICE_CHANNELS, *(spec.lattice_size,) * 3)}"
        )
    n = spec.lattice_size - 1
    lo = np.log([r[0] for r in spec.length_range])
    hi = np.log([r[1] for r in spec.length_range])
    lengths = np.exp(lo + _lattice_peak(grid[0]) / n * (hi - lo))
    a0, a1 = spec.angle_range
    angles = a0 + _lattice_peak(grid[1]) / n * (a1 - a0)
    return tuple(float(v) for v in (*lengths, *angles))


def site_positions(grid: Any, spec: VoxelSpec = SMALL, threshold: float | None = None):
    """(n, 3) fractional coordinates of the sites in one element grid."""
    g = np.asarray(grid)
    thr = spec.threshold if threshold is None else threshold
    return find_peaks(g, thr, periodic=True, sigma=spec.sigma) / np.array(g.shape, dtype=np.float64)


def devoxelize(
    voxels: CrystalVoxels | None = None,
    *,
    lattice: Any = None,
    numbers: Any = None,
    elements: Any = None,
    spec: VoxelSpec | None = None,
    threshold: float | None = None,
) -> Any:
    """Crystal images -> pymatgen Structure: lattice from the lattice grid, sites from the
    peaks of each element grid. Give a :class:`CrystalVoxels` or its three arrays (lattice
    may also be the 6 lattice parameters). EncodingError when no site is found."""
    from pymatgen.core import Lattice, Structure

    if voxels is not None:
        lattice, numbers, elements = voxels.lattice, voxels.numbers, voxels.elements
        spec = spec or voxels.spec
    spec = spec or SMALL
    lat = np.asarray(lattice)
    params = lattice_parameters(lat, spec) if lat.ndim == 4 else tuple(lat.reshape(6))
    numbers = check_voxel_elements(numbers)
    elements = np.asarray(elements)
    if len(numbers) != len(elements):
        raise EncodingError(f"{len(numbers)} atomic numbers for {len(elements)} element grids")
    if not len(numbers):
        raise EncodingError("no element present (no element grid to read sites from)")
    species: list[int] = []
    coords: list[np.ndarray] = []
    for z, g in zip(numbers, elements, strict=True):
        pos = site_positions(g, spec, threshold)
        species += [int(z)] * len(pos)
        coords.append(pos)
    if not species:
        raise EncodingError("no sites found in the element grids (all below the threshold)")
    if len(species) > MAX_SITES:
        raise EncodingError(
            f"{len(species)} sites found, more than the {MAX_SITES} a crystal image may hold "
            "(a noisy grid, not a crystal)"
        )
    try:
        lattice_obj = Lattice.from_parameters(*params)
    except ValueError as exc:
        raise EncodingError(f"lattice parameters {params} give no valid cell: {exc}") from exc
    if not np.isfinite(lattice_obj.matrix).all() or lattice_obj.volume <= 1e-6:
        raise EncodingError(f"lattice parameters {params} give no valid cell")
    return Structure(lattice_obj, species, np.concatenate(coords))
