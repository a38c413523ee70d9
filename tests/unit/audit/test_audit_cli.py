"""``ctd audit`` end to end: outputs and exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from audit_fixtures import make_certificate, make_log

from ctd_stats.cli.entry import main


def test_cli_compliant(tmp_path: Path, write_cert, capsys) -> None:
    df = make_log(5000, rate=0.08, seed=1)
    log = tmp_path / "log.parquet"
    df.to_parquet(log, index=False)
    cert = write_cert(reference=np.random.default_rng(0).random(4000))
    out = tmp_path / "audit"
    code = main(
        [
            "audit",
            "--certificate",
            str(cert),
            "--log",
            str(log),
            "--out",
            str(out),
            "--window",
            "1h",
        ]
    )
    assert code == 0
    assert "COMPLIANT" in capsys.readouterr().out
    data = json.loads((out / "audit.json").read_text())
    assert data["verdict"]["compliant"] and data["drift"]["available"]
    assert (out / "audit.md").is_file() and (out / "audit.html").is_file()


def test_cli_violation_and_json(tmp_path: Path, write_cert, capsys) -> None:
    df = make_log(5000, rate=0.2, seed=2)
    log = tmp_path / "log.csv"
    df.to_csv(log, index=False)
    cert = write_cert()
    code = main(
        [
            "--json",
            "audit",
            "--certificate",
            str(cert),
            "--log",
            str(log),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["exit_code"] == 1 and not payload["compliant"]


def test_cli_bad_input(tmp_path: Path, write_cert, capsys) -> None:
    df = make_log(100, seed=3)
    log = tmp_path / "log.csv"
    df.drop(columns="timestamp").to_csv(log, index=False)
    cert = write_cert()
    out = tmp_path / "o"
    assert main(["audit", "--certificate", str(cert), "--log", str(log), "--out", str(out)]) == 2
    assert "timestamp" in capsys.readouterr().err
    assert not out.exists()
    df.to_csv(log, index=False)
    assert (
        main(
            [
                "audit",
                "--certificate",
                str(tmp_path / "missing.json"),
                "--log",
                str(log),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["audit", "--certificate", str(bad), "--log", str(log), "--out", str(out)]) == 2
    assert (
        main(
            [
                "audit",
                "--certificate",
                str(cert),
                "--log",
                str(tmp_path / "x.jsonl"),
                "--out",
                str(out),
            ]
        )
        == 2
    )


def test_cli_selects_budget(tmp_path: Path, capsys) -> None:
    second = make_certificate(threshold=0.8, budget=0.25)["results"][0]
    cert = tmp_path / "c.json"
    cert.write_text(json.dumps(make_certificate(extra_results=[second])))
    log = tmp_path / "log.jsonl"
    make_log(3000, rate=0.15, threshold=0.8, seed=4).to_json(
        log, orient="records", lines=True, date_format="iso"
    )
    args = ["audit", "--certificate", str(cert), "--log", str(log), "--out", str(tmp_path / "o")]
    assert main(args) == 2  # ambiguous
    assert "budget" in capsys.readouterr().err
    assert main([*args, "--budget", "0.25"]) == 0
