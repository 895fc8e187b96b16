"""`topogen report training`: the training curves of any model from its Lightning logs."""

from __future__ import annotations

import pandas as pd
from PIL import Image

from topogen.report.training import _columns


def _log(folder, version: int, rows: list[dict]) -> None:
    path = folder / f"logs/version_{version}/metrics.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_curves_of_a_resumed_run_with_losses_and_other_metrics(cli, tmp_path):
    work = tmp_path / "cgcnn/work"
    # Lightning's CSVLogger: train and val rows apart, a resumed run in a new version
    _log(work, 0, [{"epoch": 0, "step": 6, "val_loss": 3.1, "val_mae": 1.6},
                   {"epoch": 0, "step": 6, "train_loss": 3.5, "train_mae": 1.8},
                   {"epoch": 1, "step": 13, "val_loss": 2.0, "val_mae": 1.2}])  # fmt: skip
    _log(work, 1, [{"epoch": 1, "step": 13, "train_loss": 2.4, "train_mae": 1.3},
                   {"epoch": 2, "step": 20, "val_loss": 1.5, "val_mae": 1.0,
                    "train_loss": 1.9, "train_mae": 1.1}])  # fmt: skip
    res = cli("report", "training", work, "--title", "cgcnn", "--plot", tmp_path / "c.png")
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == f"report training: 3 epochs of {work} -> {tmp_path / 'c.png'}"
    assert Image.open(tmp_path / "c.png").size == (1210, 440)  # two panels
    merged = pd.DataFrame(
        {"epoch": [0, 1], "step": [6, 13], "g_loss": [1.0, 0.5], "g_adversarial": [0.3, 0.2],
         "wasserstein": [0.4, 0.1], "oracle_stable": [None, None]}
    )  # fmt: skip
    assert _columns(merged) == (["g_loss", "g_adversarial"], [], ["wasserstein"])


def test_a_folder_without_logs_is_named(cli, tmp_path):
    res = cli("report", "training", tmp_path / "work", "--plot", tmp_path / "c.png")
    assert res.returncode == 1 and not (tmp_path / "c.png").exists()
    assert res.stderr.strip() == (
        f"topogen: error: {tmp_path / 'work'}: no training log (logs/version_*/metrics.csv); "
        "was the model trained here?"
    )
