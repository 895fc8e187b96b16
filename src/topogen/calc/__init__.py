"""Calculators with one interface (:mod:`topogen.calc.chain`): CHGNet relaxation, phonons,
band gap and topology score (:mod:`topogen.calc.calculators`), and a Chain of them.

Depends on topogen.io, topogen.structure and topogen.runtime only, so that the data stage
(the prototype library), the models (the Stage III oracle) and the screening funnel share
one implementation.
"""
