"""One interface for every calculator, and a :class:`Chain` that runs them in order.

A calculator computes one property of structures (pymatgen): ``calc(structure) -> dict`` for
one, ``calc_many(structures) -> list[dict]`` for a batch (the batched route; ``calc`` is a
batch of one). Every result dict holds, besides the calculator's own numbers:

``verdict``
    ``"pass"`` (judged and kept), ``"fail"`` (judged and rejected) or ``"failed"`` (could
    not judge: CHGNet, phonopy or a model raised; the reason says how)
``reason``
    one line
``structure``
    the structure the next calculator gets (a relaxation's result; otherwise the input)
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any


class Calc(ABC):
    """Base class: subclasses set :attr:`name` and implement :meth:`calc_many`."""

    name = "calc"

    def calc(self, structure: Any) -> dict[str, Any]:
        """The result for one structure (module docstring)."""
        return self.calc_many([structure])[0]

    @abstractmethod
    def calc_many(self, structures: Sequence[Any]) -> list[dict[str, Any]]:
        """One result per structure, in order."""


class Chain(Calc):
    """Calculators run in order on a batch; a structure stops at its first ``fail`` or
    ``failed`` verdict, with that step's reason. Each calculator sees the structure the
    previous one returned. Result per structure: ``verdict``, ``reason``, ``structure``
    (the last one reached), ``stopped_at`` (the name of the rejecting step, or None) and
    ``steps`` (name -> that step's result, for the steps that ran). :attr:`seconds` holds
    each step's wall time in the last call; ``log``, when given, gets a line per step."""

    name = "chain"

    def __init__(self, *calcs: Calc, log: Any = None) -> None:
        names = [c.name for c in calcs]
        if len(set(names)) != len(names):
            raise ValueError(f"Chain: repeated calculator names {names}")
        self.calcs = list(calcs)
        self.seconds: dict[str, float] = {}
        self.log = log  # called with one line after each step (progress), when set

    def calc_many(self, structures: Sequence[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"verdict": "pass", "reason": "", "structure": s, "stopped_at": None, "steps": {}}
            for s in structures
        ]
        alive = list(range(len(out)))
        self.seconds = {}
        for calc in self.calcs:
            t0 = time.perf_counter()
            results = calc.calc_many([out[i]["structure"] for i in alive]) if alive else []
            self.seconds[calc.name] = time.perf_counter() - t0
            still = []
            for i, res in zip(alive, results, strict=True):
                row = out[i]
                row["steps"][calc.name] = res
                if res.get("structure") is not None:
                    row["structure"] = res["structure"]
                row["reason"] = res["reason"]
                if res["verdict"] == "pass":
                    still.append(i)
                else:
                    row["verdict"], row["stopped_at"] = res["verdict"], calc.name
            if self.log is not None and alive:
                self.log(
                    f"{calc.name}: {len(still)} of {len(alive)} pass "
                    f"({self.seconds[calc.name]:.0f} s)"
                )
            alive = still
        return out
