"""Candidates from an ensemble of LoGAN models: every member draws ``n`` samples of its target
into one structure table (the funnel screens them like any generator's; its PCA + k-means
selection step picks the DFT set, the paper's filter).

Row ids are ``logan-<k>-<seed>`` (member k in the order given); each row records the member's
checkpoint, its sha256, its target formula, the sample's seed and the generator snapshot that
drew it, so any sample can be redrawn alone. Samples that fail the structural check
(:func:`topogen.structure.sanity.structure_problem`: two atoms closer than ``min_distance``,
periodic images included) are rejected rows with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from topogen.io.provenance import sha256
from topogen.io.tables import LoadResult, Record
from topogen.models.logan.train import generate, load_logan, snapshot_of
from topogen.structure.sanity import structure_problem


def sample_ensemble(
    checkpoints: Sequence[str | os.PathLike[str]],
    n: int,
    seed: int,
    *,
    min_distance: float,
    source: str = "logan",
) -> LoadResult:
    """``n`` samples of every member (seeds ``seed .. seed + n - 1``); module docstring."""
    result = LoadResult()
    for k, path in enumerate(checkpoints):
        model = load_logan(path)
        digest = sha256(path)
        seeds = [int(seed) + i for i in range(n)]
        for s, structure in zip(seeds, generate(model, seeds), strict=True):
            rid = f"{source}-{k}-{s}"
            reason = structure_problem(structure, min_distance)
            props = {
                "checkpoint": str(path),
                "checkpoint_sha256": digest,
                "target": structure.composition.formula.replace(" ", ""),
                "seed": s,
                "snapshot": snapshot_of(model, s),
            }
            result.admit(str(path), str(s), rid, reason, Record(rid, source, structure, props))
    return result
