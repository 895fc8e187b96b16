"""Wannier functions from pw.x: nscf, ``pw2wannier90.x``, ``wannier90.x``, and the checks.

Nothing is hand-picked by default:

* **projections** are atomic orbitals chosen from the valence shells listed in the
  pseudopotentials' headers (``PP_CHI``): each element's open shells (Bi 6p, Mo 4d and 5s,
  S 3p) are projected on, its full shells (Bi 5d and 6s, S 3s) are excluded from the
  Wannierisation with ``exclude_bands``, *provided* the DFT bands show them as an isolated
  group below the rest (a gap at every k). Where they are not isolated (Si 3s mixes with
  3p) the highest excluded shell is projected on too, and the test repeats. With spin-orbit
  the projections are spinors (two Wannier functions per orbital, up/down interleaved);
* ``num_wann``, ``num_bands`` and ``exclude_bands`` follow from that choice and the nscf
  ``nbnd`` (all valence states of the pseudopotentials plus ``extra_bands``);
* the **frozen window** reaches ``froz_margin`` eV above the valence band maximum (or the
  Fermi level of a metal), lowered where needed so that no k point holds more than
  ``num_wann`` bands inside it.

SCDM projections (``scdm=True``; erfc with mu at the top of the frozen window) are available
but not the default: with QE 6.7 and spinors they have broken the time-reversal symmetry of
the model (Kramers pairs split by 1-140 meV, different Z2 along the two loop directions)
where atomic projections gave exact pairs. Here, on the Bi bilayer, they gave Z2 = 1 both
ways but Wannier bands 0.11 eV off DFT (0.07 eV with projections) and mixed spins.

Before an invariant is trusted, :func:`wannierize` reports: the largest deviation of the
Wannier-interpolated bands (from the ``_hr.dat`` model itself) from DFT bands near the Fermi
level, at the SCF k points (off the Wannier mesh when the grids differ) and on the mesh; the
Kramers splitting of the model at the TRIM; and the spreads from the ``.wout``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from topogen.dft.espresso import (
    Crystal,
    EspressoError,
    Launcher,
    full_kgrid,
    render_namelist,
    run_program,
)
from topogen.dft.handlers import PwResult, run_pw, seed_outdir
from topogen.dft.pseudos import Shell, UpfHeader, read_upf_header
from topogen.io.atomic import write_text
from topogen.topology.hr import TBModel, hamiltonian, read_hr
from topogen.topology.spinors import kramers_splitting

__all__ = [
    "ProjectionChoice",
    "WannierError",
    "WannierResult",
    "WoutResult",
    "apply_ws_distance",
    "band_deviation",
    "band_edges",
    "choose_projections",
    "count_projections",
    "frozen_window",
    "model_gap",
    "parse_wout",
    "read_eig",
    "run_nscf",
    "trs_asymmetry",
    "valence_states",
    "wannierize",
    "win_text",
]

SEEDNAME = "wannier90"
_ORBITALS = {
    "s": 1, "p": 3, "d": 5, "f": 7, "pz": 1, "px": 1, "py": 1, "sp": 2, "sp2": 3, "sp3": 4,
    "sp3d": 5, "sp3d2": 6, "dxy": 1, "dxz": 1, "dyz": 1, "dz2": 1, "dx2-y2": 1,
}  # fmt: skip


class WannierError(EspressoError):
    """Wannier90 or pw2wannier90 failed, or the Wannierisation cannot be set up."""


# ---------------------------------------------------------------- projections


@dataclass(frozen=True)
class ProjectionChoice:
    projections: tuple[str, ...]  # Wannier90 lines, e.g. ("Bi:p",)
    num_wann: int
    n_excluded: int  # bands below the projected manifold, excluded from Wannierisation
    spinors: bool
    projected: dict[str, tuple[str, ...]] = field(default_factory=dict)  # element -> shells
    excluded: dict[str, tuple[str, ...]] = field(default_factory=dict)
    isolation_gap: float | None = None  # eV between band n_excluded and n_excluded + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "projections": list(self.projections),
            "num_wann": self.num_wann,
            "n_excluded": self.n_excluded,
            "spinors": self.spinors,
            "projected_shells": {k: list(v) for k, v in self.projected.items()},
            "excluded_shells": {k: list(v) for k, v in self.excluded.items()},
            "isolation_gap_eV": self.isolation_gap,
        }


def count_projections(line: str, counts: Mapping[str, int], spinors: bool) -> int:
    """Wannier functions produced by one projection line (``Bi:p``, ``Si:sp3``, ``Mo:l=2``)."""
    if ":" not in line:
        raise WannierError(f"cannot read projection {line!r} (expected 'Site:orbitals')")
    site, orbitals = (s.strip() for s in line.split(":", 1))
    orbitals = orbitals.split(":")[0]  # drop ':z=...' etc.
    if site not in counts:
        raise WannierError(f"projection {line!r}: no atom {site!r} in the structure")
    n = 0
    for orb in orbitals.split(";"):
        orb = orb.strip().lower()
        m = re.fullmatch(r"l\s*=\s*(-?\d)(?:\s*,\s*mr\s*=\s*([\d,\s]+))?", orb)
        if m:
            lval = int(m.group(1))
            if m.group(2):
                n += len([x for x in m.group(2).split(",") if x.strip()])
            else:
                n += {-1: 2, -2: 3, -3: 4, -4: 5, -5: 6}.get(lval, 2 * lval + 1)
        elif orb in _ORBITALS:
            n += _ORBITALS[orb]
        else:
            raise WannierError(f"projection {line!r}: unknown orbital {orb!r}")
    return n * counts[site] * (2 if spinors else 1)


def _ordered_shells(header: UpfHeader) -> list[Shell]:
    """Shells by increasing pseudo-atom energy (file order where energies are missing)."""
    shells = list(header.shells)
    if all(s.energy is not None for s in shells):
        shells.sort(key=lambda s: s.energy)
    return shells


def choose_projections(
    symbols: Sequence[str],
    headers: Mapping[str, UpfHeader],
    eigenvalues: np.ndarray | None,
    spinors: bool,
    isolation_tol: float = 0.05,
) -> ProjectionChoice:
    """Projections from the pseudopotentials' valence shells (see the module docstring).

    ``eigenvalues`` (nk, nbnd) in eV decide which full shells may be excluded: the bands they
    account for must lie at least ``isolation_tol`` eV below the next band at every k. With
    ``eigenvalues=None`` the first guess (open shells only) is returned.
    """
    counts = {el: list(symbols).count(el) for el in dict.fromkeys(symbols)}
    per_band = 1 if spinors else 2
    projected: dict[str, list[Shell]] = {}
    excluded: dict[str, list[Shell]] = {}
    for el in counts:
        shells = _ordered_shells(headers[el])
        electrons = sum(s.occupation for s in shells)
        if shells and abs(electrons - headers[el].z_valence) > 1e-3:
            raise WannierError(
                f"{headers[el].path}: the PP_CHI shells hold {electrons:g} electrons but "
                f"z_valence is {headers[el].z_valence:g}; give the projections explicitly"
            )
        if not shells:
            raise WannierError(
                f"{headers[el].path}: the pseudopotential lists no valence wavefunctions "
                "(PP_CHI); give the projections explicitly"
            )
        open_ = [s for s in shells if not s.is_full]
        if not open_:  # closed-shell atom: project on its highest shell
            open_ = [shells[-1]]
        projected[el] = [s for s in shells if s in open_]
        excluded[el] = [s for s in shells if s not in open_]

    while True:
        n_excl = sum(counts[el] * s.capacity for el in counts for s in excluded[el]) // per_band
        gap = None
        if n_excl and eigenvalues is not None:
            eig = np.asarray(eigenvalues)
            if eig.shape[1] <= n_excl:
                raise WannierError(f"{eig.shape[1]} bands computed, {n_excl} to exclude")
            gap = float(eig[:, n_excl].min() - eig[:, n_excl - 1].max())
        if not n_excl or eigenvalues is None or gap >= isolation_tol:
            break
        # not isolated: project on the highest excluded shell as well
        el, shell = max(
            ((el, s) for el in counts for s in excluded[el]),
            key=lambda t: (t[1].energy if t[1].energy is not None else 0.0, t[1].l),
        )
        excluded[el].remove(shell)
        projected[el] = [s for s in _ordered_shells(headers[el]) if s in (*projected[el], shell)]

    lines, num_wann = [], 0
    for el in counts:
        letters = ";".join(dict.fromkeys(s.letter for s in projected[el]))
        lines.append(f"{el}:{letters}")
        num_wann += counts[el] * sum(2 * s.l + 1 for s in projected[el]) * (2 if spinors else 1)
    return ProjectionChoice(
        tuple(lines),
        num_wann,
        n_excl,
        spinors,
        {el: tuple(s.label for s in projected[el]) for el in counts},
        {el: tuple(s.label for s in excluded[el]) for el in counts},
        gap,
    )


def valence_states(symbols: Sequence[str], headers: Mapping[str, UpfHeader], spinors: bool) -> int:
    """Bands spanned by every valence shell of every atom (spin included)."""
    per = 2 if spinors else 1
    return sum(sum(2 * s.l + 1 for s in headers[el].shells) * per for el in symbols)


# ---------------------------------------------------------------- windows


def band_edges(eigenvalues: np.ndarray, n_occ: int) -> dict[str, float | None]:
    """VBM, CBM, direct and indirect gaps (eV) for ``n_occ`` occupied bands."""
    eig = np.asarray(eigenvalues)
    if not 0 < n_occ < eig.shape[1]:
        return {"vbm": None, "cbm": None, "gap_direct": None, "gap_indirect": None}
    vbm, cbm = float(eig[:, n_occ - 1].max()), float(eig[:, n_occ].min())
    return {
        "vbm": vbm,
        "cbm": cbm,
        "gap_direct": float((eig[:, n_occ] - eig[:, n_occ - 1]).min()),
        "gap_indirect": cbm - vbm,
    }


def frozen_window(
    eigenvalues: np.ndarray,
    n_excluded: int,
    num_wann: int,
    reference: float,
    margin: float = 1.0,
    safety: float = 0.01,
) -> tuple[float, list[str]]:
    """``dis_froz_max`` (eV): ``reference + margin``, lowered below the (num_wann+1)-th kept
    band; returns it and the problems found (a window that does not reach the reference)."""
    kept = np.asarray(eigenvalues)[:, n_excluded:]
    froz = reference + margin
    problems = []
    if kept.shape[1] > num_wann:
        limit = float(kept[:, num_wann].min()) - safety
        froz = min(froz, limit)
    if froz < reference:
        problems.append(
            f"frozen window max {froz:.3f} eV is below the reference level {reference:.3f} eV: "
            f"more than {num_wann} bands there at some k"
        )
    return froz, problems


# ---------------------------------------------------------------- files


def win_text(
    crystal: Crystal,
    choice: ProjectionChoice,
    num_bands: int,
    nbnd: int,
    kgrid: Sequence[int],
    froz_max: float | None,
    num_iter: int = 200,
    dis_num_iter: int = 500,
    scdm: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The ``.win`` file: windows, projections (or ``auto_projections`` for SCDM), k mesh."""

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return ".true." if v else ".false."
        return str(v)

    keys: dict[str, Any] = {
        "num_wann": choice.num_wann,
        "num_bands": num_bands,
        "spinors": choice.spinors,
        "num_iter": num_iter,
        "write_hr": True,
        "iprint": 1,
    }
    excluded = list(range(1, choice.n_excluded + 1)) + list(
        range(choice.n_excluded + num_bands + 1, nbnd + 1)
    )
    if excluded:
        keys["exclude_bands"] = _ranges(excluded)
    if num_bands > choice.num_wann:
        keys["dis_num_iter"] = dis_num_iter
        if froz_max is not None:
            keys["dis_froz_max"] = f"{froz_max:.6f}"
    if scdm:
        keys["auto_projections"] = True
    keys.update(extra or {})
    lines = [f"{k} = {fmt(v)}" for k, v in keys.items()]
    lines += ["", "begin unit_cell_cart", "ang"]
    lines += ["  " + " ".join(f"{x:16.10f}" for x in row) for row in crystal.cell]
    lines += ["end unit_cell_cart", "", "begin atoms_cart", "ang"]
    lines += [
        f"  {s} " + " ".join(f"{x:16.10f}" for x in p)
        for s, p in zip(crystal.symbols, crystal.positions, strict=True)
    ]
    lines += ["end atoms_cart", ""]
    if not scdm:
        lines += ["begin projections", *choice.projections, "end projections", ""]
    lines += ["mp_grid = " + " ".join(str(int(n)) for n in kgrid), "", "begin kpoints"]
    lines += [f"  {a:14.10f} {b:14.10f} {c:14.10f}" for a, b, c in full_kgrid(kgrid)]
    lines += ["end kpoints"]
    return "\n".join(lines) + "\n"


def _ranges(values: list[int]) -> str:
    out, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(f"{start}-{prev}" if prev > start else str(start))
        if v is not None:
            start = prev = v
    return ", ".join(out)


def read_eig(path: str | os.PathLike[str]) -> np.ndarray:
    """A ``.eig`` file as ``(nk, num_bands)`` eV."""
    path = Path(path)
    try:
        data = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise WannierError(f"{path}: cannot read .eig file: {exc}") from None
    nb, nk = int(data[:, 0].max()), int(data[:, 1].max())
    if len(data) != nb * nk:
        raise WannierError(f"{path}: {len(data)} lines, expected {nb} x {nk}")
    eig = np.zeros((nk, nb))
    eig[data[:, 1].astype(int) - 1, data[:, 0].astype(int) - 1] = data[:, 2]
    return eig


@dataclass
class WoutResult:
    centres: np.ndarray | None  # (num_wann, 3) A cartesian
    spreads: np.ndarray | None  # (num_wann,) A^2
    omega_i: float | None
    omega_d: float | None
    omega_od: float | None
    omega_total: float | None
    disentanglement_converged: bool | None
    wannierisation_converged: bool | None
    wall_time: float | None
    errors: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "centres_A": None if self.centres is None else self.centres.tolist(),
            "spreads_A2": None if self.spreads is None else self.spreads.tolist(),
            "omega_i_A2": self.omega_i,
            "omega_d_A2": self.omega_d,
            "omega_od_A2": self.omega_od,
            "omega_total_A2": self.omega_total,
            "disentanglement_converged": self.disentanglement_converged,
            "wannierisation_converged": self.wannierisation_converged,
            "wall_time_s": self.wall_time,
            "errors": self.errors,
        }


_F = r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?"


def parse_wout(source: str | os.PathLike[str], text: str | None = None) -> WoutResult:
    """Final centres and spreads, the Omega terms and the error messages of a ``.wout``."""
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise WannierError(f"{source}: cannot read .wout: {exc}") from None
    centres = spreads = None
    i = text.rfind("Final State")
    if i >= 0:
        rows = re.findall(
            rf"WF centre and spread\s+\d+\s+\(\s*({_F}),\s*({_F}),\s*({_F})\s*\)\s+({_F})", text[i:]
        )
        if rows:
            arr = np.array(rows, dtype=float)
            centres, spreads = arr[:, :3], arr[:, 3]

    def last(pattern: str) -> float | None:
        found = re.findall(pattern, text[i:] if i >= 0 else text)
        return float(found[-1]) if found else None

    errors = [" ".join(m.split()) for m in re.findall(r"Error[:!]?\s*(.*)", text) if m.strip()]
    if "Exiting" in text and not errors:
        errors.append("wannier90 exited early")
    dis = None
    if "DISENTANGLE" in text:
        dis = "Disentanglement convergence criteria satisfied" in text
    wan = None
    if "WANNIERISE" in text or "Wannierisation" in text:
        wan = bool(re.search(r"Wannierisation convergence criteria satisfied", text)) or None
    wall = re.findall(rf"Total Execution Time\s+({_F})", text)
    return WoutResult(
        centres,
        spreads,
        last(rf"Omega I\s+=\s+({_F})"),
        last(rf"Omega D\s+=\s+({_F})"),
        last(rf"Omega OD\s+=\s+({_F})"),
        last(rf"Omega Total\s+=\s+({_F})"),
        dis,
        wan,
        float(wall[-1]) if wall else None,
        errors,
    )


# ---------------------------------------------------------------- checks


def band_deviation(
    model: TBModel,
    kpoints: np.ndarray,
    dft: np.ndarray,
    first_band: int,
    lo: float,
    hi: float,
) -> dict[str, Any]:
    """Largest |E_wannier - E_dft| over DFT bands ``first_band..`` with lo <= E_dft <= hi.

    ``kpoints`` are reduced; band j of the model is matched with DFT band ``first_band + j``.
    """
    k = np.asarray(kpoints, dtype=float).reshape(-1, 3)
    ew = np.linalg.eigvalsh(hamiltonian(model, k))
    n = min(model.num_wann, dft.shape[1] - first_band)
    ed = np.asarray(dft)[:, first_band : first_band + n]
    mask = (ed >= lo) & (ed <= hi)
    if not mask.any():
        return {"max_eV": None, "mean_eV": None, "n_compared": 0, "window_eV": [lo, hi]}
    diff = np.abs(ew[:, :n] - ed)[mask]
    worst = np.unravel_index(np.where(mask, np.abs(ew[:, :n] - ed), -1).argmax(), mask.shape)
    return {
        "max_eV": float(diff.max()),
        "mean_eV": float(diff.mean()),
        "n_compared": int(mask.sum()),
        "window_eV": [lo, hi],
        "worst_k": k[worst[0]].round(6).tolist(),
        "worst_band": int(first_band + worst[1] + 1),
    }


def apply_ws_distance(model: TBModel, wsvec: str | os.PathLike[str]) -> TBModel:
    """The model with Wannier90's ``use_ws_distance`` correction from ``<seed>_wsvec.dat``:
    each hopping H_mn(R) is spread equally over the shortest images R + T of the pair."""
    path = Path(wsvec)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()[1:]
    except OSError as exc:
        raise WannierError(f"{path}: cannot read: {exc}") from None
    index = {tuple(r): i for i, r in enumerate(model.r_vectors.tolist())}
    acc: dict[tuple[int, ...], np.ndarray] = {}
    i = 0
    nw = model.num_wann
    try:
        while i < len(lines):
            head = lines[i].split()
            if not head:
                i += 1
                continue
            r, m, n = tuple(int(x) for x in head[:3]), int(head[3]) - 1, int(head[4]) - 1
            nt = int(lines[i + 1])
            shifts = [[int(x) for x in lines[i + 2 + j].split()[:3]] for j in range(nt)]
            i += 2 + nt
            h = model.hoppings[index[r], m, n] / nt
            for t in shifts:
                key = (r[0] + t[0], r[1] + t[1], r[2] + t[2])
                acc.setdefault(key, np.zeros((nw, nw), dtype=complex))[m, n] += h
    except (ValueError, IndexError, KeyError) as exc:
        raise WannierError(f"{path}: line {i + 2}: cannot read ({exc!r})") from None
    return TBModel(
        np.array(list(acc)),
        np.array(list(acc.values())),
        positions=model.positions,
        source=f"{model.source} + {path.name}",
    )


def model_gap(model: TBModel, nocc: int, n: int = 24) -> dict[str, float | None]:
    """Direct and indirect gaps (eV) of the model's lowest ``nocc`` bands on an n x n grid."""
    if not 0 < nocc < model.num_wann:
        return {"gap_direct": None, "gap_indirect": None}
    g = np.stack(np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij"), -1).reshape(-1, 2)
    k = np.column_stack([g, np.zeros(len(g))])
    e = np.linalg.eigvalsh(hamiltonian(model, k))
    return {
        "gap_direct": float((e[:, nocc] - e[:, nocc - 1]).min()),
        "gap_indirect": float(e[:, nocc].min() - e[:, nocc - 1].max()),
    }


def trs_asymmetry(model: TBModel, n: int = 8, seed: int = 0) -> float:
    """max |E_n(k) - E_n(-k)| (eV) at ``n`` random in-plane k: zero under time reversal.

    Basis independent and, unlike the Kramers splitting at the TRIM (which sit on even
    Wannier meshes, where the model reproduces DFT by construction), tested off the mesh.
    """
    k = np.random.default_rng(seed).uniform(0, 1, (n, 3))
    k[:, 2] = 0.0
    plus = np.linalg.eigvalsh(hamiltonian(model, k))
    minus = np.linalg.eigvalsh(hamiltonian(model, -k))
    return float(np.abs(plus - minus).max())


def _on_mesh(k: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    scaled = np.asarray(k) * np.asarray(grid, dtype=float)
    return (np.abs(scaled - np.round(scaled)) < 1e-4).all(axis=1)


# ---------------------------------------------------------------- the run


@dataclass
class WannierResult:
    directory: Path
    nscf: PwResult
    choice: ProjectionChoice
    num_bands: int
    nbnd: int
    n_occupied: int  # occupied Wannier bands (for invariants)
    froz_max: float | None
    reference: float
    hr_path: Path
    wout_path: Path
    model: TBModel
    wout: WoutResult
    band_check: dict[str, Any]
    band_check_mesh: dict[str, Any]
    kramers: float | None
    trs_asymmetry: float
    dft_edges: dict[str, float | None]
    model_gaps: dict[str, float | None]
    problems: list[str]
    timings: dict[str, float]
    scdm: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "nscf": self.nscf.as_dict(),
            **self.choice.as_dict(),
            "num_bands": self.num_bands,
            "nbnd": self.nbnd,
            "n_occupied": self.n_occupied,
            "dis_froz_max_eV": self.froz_max,
            "reference_eV": self.reference,
            "scdm": self.scdm,
            "hr": str(self.hr_path),
            "wout": str(self.wout_path),
            "spreads": self.wout.as_dict(),
            "band_check": self.band_check,
            "band_check_on_mesh": self.band_check_mesh,
            "kramers_splitting_eV": self.kramers,
            "trs_asymmetry_eV": self.trs_asymmetry,
            "dft_band_edges": self.dft_edges,
            "wannier_gaps": self.model_gaps,
            "problems": self.problems,
            "timings_s": self.timings,
        }


def _run_checked(cmd: list[str], cwd: Path, name: str, launcher: Launcher) -> float:
    run = run_program(
        cmd, cwd, cwd / f"{name}.out", cwd / f"{name}.err", env=launcher.environment()
    )
    werr = list(cwd.glob("*.werr"))
    if run.returncode != 0 or werr:
        detail = ""
        for f in [*werr, cwd / f"{name}.err", cwd / f"{name}.out"]:
            if f.exists() and f.read_text(errors="replace").strip():
                detail = " ".join(f.read_text(errors="replace").split()[-40:])
                break
        raise WannierError(f"{' '.join(cmd)} failed in {cwd} (exit {run.returncode}): {detail}")
    return run.wall_time


def _electrons(scf: PwResult) -> tuple[bool, dict[str, UpfHeader], int]:
    """Spinors?, the pseudopotential headers and the occupied bands of an SCF run."""
    spinors = bool(scf.input.namelists["system"].get("noncolin", False))
    headers = {el: read_upf_header(p) for el, p in scf.input.pseudos.items()}
    nelec = scf.output.n_electrons
    if nelec is None:
        raise WannierError(f"{scf.output_path}: number of electrons not found")
    return spinors, headers, round(nelec / (1 if spinors else 2))


def _num_wann(crystal: Crystal, projections: Sequence[str], spinors: bool) -> int:
    counts = {el: crystal.symbols.count(el) for el in crystal.elements}
    return sum(count_projections(p, counts, spinors) for p in projections)


def run_nscf(
    scf: PwResult,
    workdir: str | os.PathLike[str],
    kgrid: Sequence[int] = (4, 4, 1),
    projections: Sequence[str] | None = None,
    n_excluded: int = 0,
    extra_bands: int = 4,
    nbnd: int | None = None,
    nscf_conv_thr: float = 1e-6,
    launcher: Launcher | None = None,
    max_attempts: int = 3,
    stop_at_max_seconds: bool = False,
) -> PwResult:
    """The nscf run on the full ``kgrid`` (no symmetry) in ``workdir/nscf``, with enough bands
    for the projections (every valence state of the pseudopotentials plus ``extra_bands``).
    Resumes like :func:`~topogen.dft.handlers.run_pw`: a finished run is not repeated."""
    spinors, headers, n_occ_total = _electrons(scf)
    crystal = scf.input.crystal
    if projections is None:
        first = choose_projections(crystal.symbols, headers, None, spinors)
        wanted = valence_states(crystal.symbols, headers, spinors)
        nbnd = nbnd or max(wanted, first.n_excluded + first.num_wann, n_occ_total) + extra_bands
    else:
        num_wann = _num_wann(crystal, projections, spinors)
        nbnd = nbnd or max(n_excluded + num_wann, n_occ_total) + extra_bands
    nscf_dir = Path(workdir) / "nscf"
    prefix = scf.input.namelists["control"]["prefix"]
    seed_outdir(scf.outdir, nscf_dir / "out", prefix)
    nscf_input = scf.input.updated(
        control={"calculation": "nscf", "restart_mode": "from_scratch", "tprnfor": None,
                 "tstress": None},
        system={"nbnd": int(nbnd), "nosym": True, "noinv": True},
        electrons={"conv_thr": nscf_conv_thr, "diago_full_acc": True},
    )  # fmt: skip
    nscf_input.kpoints = full_kgrid(kgrid)
    nscf = run_pw(
        nscf_input, nscf_dir, launcher or Launcher(), max_attempts=max_attempts,
        stop_at_max_seconds=stop_at_max_seconds,
    )  # fmt: skip
    eig = nscf.output.eigenvalues
    if eig is None or eig.shape[0] != int(np.prod(kgrid)):
        raise WannierError(f"{nscf.output_path}: band energies for {np.prod(kgrid)} k not found")
    return nscf


def wannierize(
    scf: PwResult,
    workdir: str | os.PathLike[str],
    kgrid: Sequence[int] = (4, 4, 1),
    projections: Sequence[str] | None = None,
    n_excluded: int = 0,
    froz_margin: float = 1.0,
    extra_bands: int = 4,
    nbnd: int | None = None,
    num_iter: int = 200,
    dis_num_iter: int = 500,
    nscf_conv_thr: float = 1e-6,
    scdm: bool = False,
    band_window: tuple[float, float] = (-2.0, 1.0),
    launcher: Launcher | None = None,
    max_attempts: int = 3,
    win_extra: Mapping[str, Any] | None = None,
    ws_distance: bool = False,
    stop_at_max_seconds: bool = False,
) -> WannierResult:
    """nscf on the full ``kgrid`` (:func:`run_nscf`) -> projections -> ``wannier90 -pp`` ->
    ``pw2wannier90`` -> ``wannier90`` -> checks, in ``workdir/nscf`` and ``workdir/wannier``.

    ``projections`` (Wannier90 lines) and ``n_excluded`` override the automatic choice.
    ``band_window`` (eV: below the VBM, above the CBM; around the Fermi level of a metal)
    bounds the DFT bands compared with the model (also cut at the frozen window).
    ``ws_distance`` applies Wannier90's minimal-image correction to the model (default: the
    plain ``_hr.dat``, as written).
    Finished steps are not rerun.
    """
    launcher = launcher or Launcher()
    workdir = Path(workdir)
    timings: dict[str, float] = {}
    crystal = scf.input.crystal
    spinors, headers, n_occ_total = _electrons(scf)
    prefix = scf.input.namelists["control"]["prefix"]

    # 1. nscf on the full mesh, no symmetry
    nscf = run_nscf(
        scf, workdir, kgrid, projections, n_excluded, extra_bands, nbnd, nscf_conv_thr,
        launcher, max_attempts, stop_at_max_seconds,
    )  # fmt: skip
    nbnd = int(nscf.input.namelists["system"]["nbnd"])
    timings["nscf"] = sum(a.wall_time or 0.0 for a in nscf.attempts)
    eig_all = nscf.output.eigenvalues

    if projections is None:
        choice = choose_projections(crystal.symbols, headers, eig_all, spinors)
    else:
        num_wann = _num_wann(crystal, projections, spinors)
        choice = ProjectionChoice(tuple(projections), num_wann, n_excluded, spinors)
    num_bands = nbnd - choice.n_excluded
    if num_bands < choice.num_wann:
        raise WannierError(f"{num_bands} bands left after exclusion < num_wann {choice.num_wann}")
    edges = band_edges(eig_all, n_occ_total)
    insulating = edges["gap_indirect"] is not None and edges["gap_indirect"] > 0
    reference = edges["vbm"] if insulating else nscf.output.reference_energy
    if reference is None:
        raise WannierError(f"{nscf.output_path}: no Fermi level or band edge to place windows")
    froz, problems = (None, [])
    if num_bands > choice.num_wann:
        froz, problems = frozen_window(
            eig_all, choice.n_excluded, choice.num_wann, reference, froz_margin
        )

    # 2. wannier90 -pp, pw2wannier90, wannier90
    wdir = workdir / "wannier"
    wdir.mkdir(parents=True, exist_ok=True)
    win = win_text(
        crystal, choice, num_bands, nbnd, kgrid, froz, num_iter, dis_num_iter, scdm, win_extra
    )
    hr = wdir / f"{SEEDNAME}_hr.dat"
    wout_path = wdir / f"{SEEDNAME}.wout"
    win_path = wdir / f"{SEEDNAME}.win"
    done = nscf.reused and hr.exists() and win_path.exists() and win_path.read_text() == win
    if not done:
        for stale in [hr, wout_path, *wdir.glob("*.werr")]:
            stale.unlink(missing_ok=True)
        write_text(win_path, win)
        timings["wannier90_pp"] = _run_checked(
            launcher.command("wannier90.x", ["-pp", SEEDNAME], parallel=False),
            wdir, "wannier90_pp", launcher,
        )  # fmt: skip
        p2w: dict[str, Any] = {
            "outdir": os.path.relpath(nscf.outdir, wdir),
            "prefix": prefix,
            "seedname": SEEDNAME,
            "write_amn": True,
            "write_mmn": True,
            "write_unk": False,
        }
        if scdm:
            sigma = max(froz_margin / 2, 0.5)
            p2w.update(
                scdm_proj=True,
                scdm_entanglement="isolated" if num_bands == choice.num_wann else "erfc",
                scdm_mu=float(froz if froz is not None else reference + froz_margin),
                scdm_sigma=float(sigma),
            )
        write_text(wdir / "pw2wan.in", render_namelist("inputpp", p2w) + "\n")
        timings["pw2wannier90"] = _run_checked(
            launcher.command("pw2wannier90.x", ["-in", "pw2wan.in"], pools=False),
            wdir, "pw2wannier90", launcher,
        )  # fmt: skip
        wout_path.unlink(missing_ok=True)
        timings["wannier90"] = _run_checked(
            launcher.command("wannier90.x", [SEEDNAME], parallel=False), wdir, "wannier90", launcher
        )
    wout = parse_wout(wout_path)
    if wout.errors:
        raise WannierError(f"{wout_path}: {wout.errors[-1]}")
    if not hr.exists():
        raise WannierError(f"{wout_path}: wannier90 finished without writing {hr.name}")

    # 3. the model and the checks
    positions = None
    if wout.centres is not None and len(wout.centres) == choice.num_wann:
        positions = wout.centres @ np.linalg.inv(crystal.cell)
    model = read_hr(hr, positions=positions)
    if ws_distance:
        model = apply_ws_distance(model, wdir / f"{SEEDNAME}_wsvec.dat")
    n_occ = n_occ_total - choice.n_excluded
    lo = reference + band_window[0]
    hi = (edges["cbm"] if insulating else reference) + band_window[1]
    if froz is not None:
        hi = min(hi, froz)
    check = {"max_eV": None, "n_compared": 0, "note": "no SCF band energies with k points"}
    so = scf.output
    if (
        so.eigenvalues is not None
        and so.kpoints is not None
        and len(so.kpoints) == len(so.eigenvalues)
    ):
        off = ~_on_mesh(so.kpoints, kgrid)
        check = band_deviation(model, so.kpoints, so.eigenvalues, choice.n_excluded, lo, hi)
        check["n_kpoints"] = len(so.kpoints)
        check["n_off_mesh"] = int(off.sum())
        if off.any():
            check["off_mesh"] = band_deviation(
                model, so.kpoints[off], so.eigenvalues[off], choice.n_excluded, lo, hi
            )
    mesh = band_deviation(model, full_kgrid(kgrid), eig_all, choice.n_excluded, lo, hi)
    kramers = kramers_splitting(model) if spinors else None
    result = WannierResult(
        directory=workdir,
        nscf=nscf,
        choice=choice,
        num_bands=num_bands,
        nbnd=int(nbnd),
        n_occupied=n_occ,
        froz_max=froz,
        reference=float(reference),
        hr_path=hr,
        wout_path=wout_path,
        model=model,
        wout=wout,
        band_check=check,
        band_check_mesh=mesh,
        kramers=kramers,
        trs_asymmetry=trs_asymmetry(model),
        dft_edges=edges,
        model_gaps=model_gap(model, n_occ),
        problems=problems,
        timings=timings,
        scdm=scdm,
    )
    return result
