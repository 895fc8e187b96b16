"""The topology score of the screening funnel: a trained CrystalBERT topology classifier's
probability that a crystal is topological (1 - p(trivial))."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from topogen.errors import TopogenError
from topogen.models.crystalbert.data import crystal_example
from topogen.models.crystalbert.train import CLASSIFICATION, load_task


class TopologyClassifier:
    """``scorer(structures) -> probabilities in [0, 1]``. Tokens from each structure (space
    group by spglib) and, when the model has a graph token, the CGCNN graph built with the
    settings it was trained with. A structure that cannot be encoded raises (the funnel's
    score step then retries one at a time and marks that one failed, with the reason)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            self.module = load_task(path)
        except Exception as exc:
            raise TopogenError(f"{path}: not a CrystalBERT checkpoint ({exc})") from exc
        hp = self.module.hparams
        if hp.kind != CLASSIFICATION or hp.task != "topology":
            raise TopogenError(
                f"{path}: a CrystalBERT {hp.task!r} model, not a topology classifier"
            )
        self.graph_params = hp.graph_params if self.module.model.settings.graph else None

    def __call__(self, structures: Sequence[Any]) -> np.ndarray:
        examples = [crystal_example(s, self.graph_params) for s in structures]
        return 1.0 - self.module.predict(examples)[:, 0]
