"""Screening funnel for generated candidates: validity -> uniqueness / novelty -> batched
CHGNet relaxation -> phonon stability -> band-gap and topology hooks -> diverse selection.

Depends on topogen.io, topogen.encode, topogen.calc (and, through hooks, topogen.models).
"""

VERDICTS = ("pass", "fail", "skipped", "failed")
