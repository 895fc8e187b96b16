"""The calculator interface: Chain order, stopping at the first failure, score calculators."""

from __future__ import annotations

import math

import pytest

from topogen.calc.calculators import CheckCalc, ScoreCalc, band_gap_calc, topology_calc
from topogen.calc.chain import Calc, Chain


class _Double(Calc):
    name = "double"

    def calc_many(self, structures):
        return [{"structure": 2 * s, "verdict": "pass", "reason": "doubled"} for s in structures]


def test_chain_passes_structures_on_and_stops_at_first_failure():
    seen = []

    def gap(structures):
        seen.append(list(structures))
        return [float(s) for s in structures]

    chain = Chain(
        CheckCalc("check", lambda s: "negative" if s < 0 else None),
        _Double(),
        band_gap_calc(gap, band_gap_min=3.0),
        topology_calc(lambda ss: [0.9 for _ in ss]),
    )
    out = chain.calc_many([1, -1, 2])
    assert seen == [[2, 4]]  # only the survivors, doubled
    assert [o["verdict"] for o in out] == ["fail", "fail", "pass"]
    assert [o["stopped_at"] for o in out] == ["band_gap", "check", None]
    assert out[0]["reason"] == "2 eV < 3 eV" and out[1]["reason"] == "negative"
    assert out[2]["structure"] == 4 and out[2]["steps"]["topology"]["topology_score"] == 0.9
    assert set(out[1]["steps"]) == {"check"}
    assert set(chain.seconds) == {"check", "double", "band_gap", "topology"}
    assert chain.calc(3)["steps"]["band_gap"]["predicted_band_gap"] == 6.0


def test_score_calc_finds_the_culprit_and_rejects_non_finite_values():
    def predict(structures):
        if "boom" in structures:
            raise RuntimeError("boom")
        return [math.nan if s == "nan" else 1.0 for s in structures]

    out = ScoreCalc("score", predict, 0.5, key="score").calc_many(["a", "boom", "nan"])
    assert [o["verdict"] for o in out] == ["pass", "failed", "failed"]
    assert out[1]["reason"] == "score model failed: RuntimeError: boom"
    assert out[2]["reason"].startswith("score model gave no finite value")


def test_chain_names_must_be_unique():
    with pytest.raises(ValueError, match="repeated"):
        Chain(_Double(), _Double())


def _square(model, x):
    return model * x * x


@pytest.mark.timeout(60)
def test_worker_pool_ends_under_a_parent_sigterm_handler():
    """Lightning installs a SIGTERM handler in the training process; forked workers must not
    inherit it, or the pool could never end them (Stage III's oracle hung so)."""
    import signal

    from topogen.calc.workers import map_with_model

    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        out = map_with_model(_square, [1, 2, 3, 4], model=10, workers=2, cost=[1, 4, 9, 16])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert out == [10, 40, 90, 160]
