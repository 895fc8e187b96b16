"""Progress lines on long work: few, plain, with counts and the time left."""

from __future__ import annotations

import io

from topogen.runtime import Progress, duration


def test_progress_prints_first_last_and_each_tenth_in_plain_text():
    out = io.StringIO()
    meter = Progress("prototypes relaxed", 250, every=3600, out=out)
    for done in range(1, 251):
        meter.update(done)
    lines = out.getvalue().splitlines()
    counts = [ln.removeprefix("prototypes relaxed: ").split(" ")[0] for ln in lines]
    assert counts == ["1/250", *(f"{25 * k}/250" for k in range(1, 11))]
    assert lines[0].startswith("prototypes relaxed: 1/250 (0%), ") and "left" in lines[0]
    assert lines[-1].startswith("prototypes relaxed: 250/250 (100%), ") and "left" not in lines[-1]
    assert not any(c in out.getvalue() for c in "\r\x1b")


def test_durations_read_naturally():
    assert [duration(s) for s in (0.4, 59, 119.6, 125, 7199, 9000)] == [
        "0 s", "59 s", "2 min", "2 min", "119 min", "2.5 h"
    ]  # fmt: skip
