import json
from pathlib import Path

import numpy as np
import pandas as pd

from ctd_stats.cli.entry import main


def _table(path: Path, n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    p = np.clip(0.5 + (2 * y - 1) * rng.normal(0.15, 0.25, n), 0, 1)
    b = np.clip(0.5 + (2 * y - 1) * rng.normal(0.3, 0.25, n), 0, 1)
    d = (2 * y - 1) * (b - p) + rng.normal(0, 0.3, n)
    split = np.where(np.arange(n) < 100, "train", "")
    pd.DataFrame(
        {
            "id": np.arange(n).astype(str),
            "split": split,
            "group": rng.choice(["a", "b"], n),
            "label": y,
            "probe_prob": p,
            "expert_prob": b,
            "dv_score": d,
        }
    ).to_parquet(path)


def test_ctd_run_end_to_end(tmp_path, capsys):
    _table(tmp_path / "scores.parquet")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "cascade: {name: e2e}\n"
        "data: {table: scores.parquet}\n"
        "calibration: {budget: [0.2, 0.3], delta: 0.1}\n"
        "evaluation: {repeats: 20, budgets: [0.1, 0.2, 0.3]}\n"
        "outputs: {directory: out}\n"
    )
    code = main(["run", str(spec)])
    assert code == 0
    out = tmp_path / "out"
    for f in ("report.html", "report.md", "study.json", "certificate.json", "calibration.html"):
        assert (out / f).is_file()
    study = json.loads((out / "study.json").read_text())
    assert study["experts"][0]["n_pool"] == 500  # training rows excluded
    assert "CTD AUROC" in capsys.readouterr().out
    # the report shows the deployable thresholds and links to the files that hold them
    cert = json.loads((out / "certificate.json").read_text())
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "Deployment: the certified thresholds" in md
    for r in cert["results"]:
        tau = r["threshold"]
        assert (f"{tau:.4g}" if isinstance(tau, float) else "+∞") in md
    assert (
        "[certificate.json](certificate.json)" in md
        and "[calibration.html](calibration.html)" in md
    )
    assert '<a href="certificate.json">' in html and '<a href="calibration.html">' in html


def test_ctd_run_missing_table_is_bad_input(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("data: {table: nope.parquet}\noutputs: {directory: out}\n")
    assert main(["run", str(spec)]) == 2
    assert "nope.parquet" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
