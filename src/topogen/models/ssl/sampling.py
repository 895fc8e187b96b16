"""Candidates from the self-supervised generator, the way the paper's novelty analysis makes
new crystals: take a crystal of the structure table, mask every atom of one of its species,
perturb all positions (``noise`` x its shortest edge), and let the generator fill in.

The masked atoms get one element together (a crystal whose one species is replaced by two
would be a different experiment): the element maximising the mean log-probability over the
masked atoms among those other than the original (and up to Pu, Z = 94, what the funnel
accepts), drawn with probabilities proportional to
exp(mean log-probability / ``temperature``) (temperature 0: the most probable). Positions
move by the predicted displacements. Row ids are ``ssl-<i>`` (sample i, seed (``seed``, i));
each records the parent crystal, the replaced and the new element with its probability, the
seed and the checkpoint (+ sha256), so a sample can be redrawn alone. Samples with atoms closer than
``min_distance`` are rejected rows with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from topogen.encode import EncodingError
from topogen.io.provenance import sha256
from topogen.io.tables import LoadResult, Record
from topogen.models.ssl.corruption import center, corrupt
from topogen.models.ssl.crystals import Crystal, collate, crystal, structure_of
from topogen.models.ssl.model import Generator
from topogen.models.ssl.train import load
from topogen.structure.sanity import MAX_Z, MIN_DISTANCE, structure_problem


def _element(z_index: int) -> str:
    from pymatgen.core import Element

    return Element.from_Z(z_index + 1).symbol


@torch.no_grad()
def sample_ssl(
    checkpoint: str | os.PathLike[str],
    parents: Sequence[Record],
    n: int,
    seed: int,
    *,
    noise: float = 0.1,
    temperature: float = 1.0,
    min_distance: float = MIN_DISTANCE,
    source: str = "ssl",
) -> LoadResult:
    """``n`` samples, sample i drawn with seed (``seed``, i) (module docstring)."""
    if not parents:
        raise EncodingError("no parent crystals to sample from")
    model: Generator = load(checkpoint, Generator)
    b = model.hparams.backbone
    digest = sha256(checkpoint)
    result = LoadResult()
    graphs: dict[str, Crystal | str] = {}
    for i in range(n):
        rng = np.random.default_rng([int(seed), i])
        parent = parents[int(rng.integers(len(parents)))]
        if parent.id not in graphs:
            try:
                graphs[parent.id] = crystal(parent.structure, b["cutoff"], b["max_neighbors"])
            except EncodingError as exc:
                graphs[parent.id] = f"parent {parent.id}: {exc}"
        c = graphs[parent.id]
        if isinstance(c, str):  # a parent without a graph: this sample is a rejected row
            result.admit(str(checkpoint), str(i), f"{source}-{i}", c, None)
            continue
        batch = collate([c]).to("cpu", torch.float32)
        corr = corrupt(batch, rng, noise_ratio=noise, mode="species")
        logits, disp = model(corr.inputs, batch, corr.noisy)
        old = int(c.species[corr.masked][0])
        score = logits[corr.masked].log_softmax(-1).mean(0).double().numpy()
        score[old] = -np.inf
        score[MAX_Z:] = -np.inf  # Z > 94: outside what the funnel and DFT accept
        if temperature > 0:
            p = np.exp((score - score.max()) / temperature)
            new = int(rng.choice(len(p), p=p / p.sum()))
        else:
            new = int(np.argmax(score))
        prob = float(np.exp(score[new] - np.logaddexp.reduce(score[np.isfinite(score)])))
        species = np.where(corr.masked.numpy(), new, c.species.numpy())
        pos = (corr.noisy + center(disp, batch)).double().numpy()
        structure = structure_of(c, species, pos)
        rid = f"{source}-{i}"
        props = {
            "parent": parent.id,
            "parent_formula": parent.structure.composition.reduced_formula,
            "replaced": _element(old),
            "element": _element(new),
            "element_probability": prob,
            "noise": noise,
            "seed": int(seed),
            "sample": i,
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": digest,
        }
        reason = structure_problem(structure, min_distance)
        result.admit(str(checkpoint), str(i), rid, reason, Record(rid, source, structure, props))
    return result
