"""Progress lines on long work: few, plain, with counts and the time left."""

from __future__ import annotations

import io

from topogen.dft.qe.launcher import run_program
from topogen.dft.qe.output import PwProgress
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


SCF_OUT = """
     scf convergence threshold =      1.0E-07
     Self-consistent Calculation

     iteration #  1     ecut=    35.00 Ry     beta= 0.40
     estimated scf accuracy    <       0.06428554 Ry

     iteration #  2     ecut=    35.00 Ry     beta= 0.40
     estimated scf accuracy    <       0.00001598 Ry
"""


def test_a_running_pw_x_reports_its_scf_iterations_and_k_points(tmp_path):
    """A program that writes pw.x's progress lines over a few seconds, watched the way
    run_pw watches pw.x: one line per new SCF iteration, k points with the time left."""
    script = tmp_path / "fake_pw.sh"
    lines = "\n".join(f"echo '     Computing kpt #: {k}  of  4'; sleep 0.3" for k in range(1, 5))
    script.write_text(
        "#!/bin/sh\n"
        + "".join(f"echo '{ln}'\n" for ln in SCF_OUT.splitlines())
        + "sleep 0.5\n"
        + lines
        + "\n"
    )
    script.chmod(0o755)
    out = io.StringIO()
    watch = PwProgress("pw.x nscf (Bi2/attempt-01)", out=out).update
    run = run_program([str(script)], tmp_path, tmp_path / "pw.out", watch=watch, every=0.1)
    assert run.returncode == 0
    said = out.getvalue().splitlines()
    assert said[0] == (
        "pw.x nscf (Bi2/attempt-01): SCF iteration 2, accuracy 1.6e-05 Ry (threshold 1.0e-07)"
    ) or said[:2] == [
        "pw.x nscf (Bi2/attempt-01): SCF iteration 1, accuracy 6.4e-02 Ry (threshold 1.0e-07)",
        "pw.x nscf (Bi2/attempt-01): SCF iteration 2, accuracy 1.6e-05 Ry (threshold 1.0e-07)",
    ]
    kpoints = [ln for ln in said if "k points" in ln]
    assert kpoints[-1].startswith("pw.x nscf (Bi2/attempt-01): k points: 4/4 (100%), ")
    assert len(kpoints) == len({ln.split(": k points: ")[1].split(" ")[0] for ln in kpoints})
    assert 2 <= len(kpoints) <= 4 and not any(c in out.getvalue() for c in "\r\x1b")
