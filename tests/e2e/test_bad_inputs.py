"""The bad-input suite: every case exits with the documented code, says in one line what is wrong
(naming the file, line or field), prints no traceback, and changes or loses no existing file."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_NOT_CERTIFIED, EXIT_OK
from tests.conftest import score_frame, write_frame

Setup = Callable[[Path], list[str]]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _spec(d: Path, text: str, table: str = "scores.parquet", n: int = 400) -> Path:
    if table and not (d / table).exists():
        write_frame(score_frame(n), d / table)
    path = d / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _certificate(d: Path) -> Path:
    spec = _spec(
        d,
        "data: {table: scores.parquet}\ncalibration: {budget: [0.1, 0.3], pareto: false}\n"
        "outputs: {directory: cal}\n",
        n=1500,
    )
    assert main(["calibrate", str(spec)]) == EXIT_OK
    return d / "cal" / "certificate.json"


def _log(d: Path, name: str = "log.jsonl", n: int = 40) -> Path:
    rng = np.random.default_rng(0)
    with open(d / name, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "timestamp": f"2026-01-01T00:00:{i % 60:02d}Z",
                        "dv_score": float(rng.normal()),
                    }
                )
                + "\n"
            )
    return d / name


def trials_zero(d: Path) -> list[str]:
    return ["simulate", "--trials", "0", "-o", str(d / "sim")]


def txt_table(d: Path) -> list[str]:
    write_frame(score_frame(300), d / "scores.csv")
    (d / "scores.txt").write_bytes((d / "scores.csv").read_bytes())
    return ["calibrate", str(_spec(d, "data: {table: scores.txt}\n", table=""))]


def csv_extra_field(d: Path) -> list[str]:
    write_frame(score_frame(300), d / "scores.csv")
    lines = (d / "scores.csv").read_text().splitlines()
    lines[21] += ",surplus"
    (d / "scores.csv").write_text("\n".join(lines) + "\n")
    return ["calibrate", str(_spec(d, "data: {table: scores.csv}\n", table=""))]


def jsonl_bad_line(d: Path) -> list[str]:
    log = _log(d)
    lines = log.read_text().splitlines()
    lines[20] = lines[20][:-1] + ","  # line 21: truncated object
    log.write_text("\n".join(lines) + "\n")
    return [
        "audit",
        "--certificate",
        str(_certificate(d)),
        "--budget",
        "0.3",
        "--log",
        str(log),
        "--out",
        str(d / "aud"),
    ]


def log_is_folder(d: Path) -> list[str]:
    (d / "logs").mkdir()
    return [
        "audit",
        "--certificate",
        str(_certificate(d)),
        "--budget",
        "0.3",
        "--log",
        str(d / "logs"),
        "--out",
        str(d / "aud"),
    ]


def ambiguous_budget(d: Path) -> list[str]:
    return [
        "audit",
        "--certificate",
        str(_certificate(d)),
        "--log",
        str(_log(d)),
        "--out",
        str(d / "aud"),
    ]


def edited_certificate(d: Path) -> list[str]:
    cert = _certificate(d)
    raw = json.loads(cert.read_text())
    raw["results"][1]["budget"] = 0.9
    (d / "edited.json").write_text(json.dumps(raw))
    return [
        "audit",
        "--certificate",
        str(d / "edited.json"),
        "--budget",
        "0.9",
        "--log",
        str(_log(d)),
        "--out",
        str(d / "aud"),
    ]


def budget_out_of_range(d: Path) -> list[str]:
    return [
        "calibrate",
        str(_spec(d, "data: {table: scores.parquet}\ncalibration:\n  budget: 1.5\n")),
    ]


def delta_zero(d: Path) -> list[str]:
    return ["calibrate", str(_spec(d, "data: {table: scores.parquet}\ncalibration: {delta: 0}\n"))]


def malformed_yaml(d: Path) -> list[str]:
    return ["calibrate", str(_spec(d, "data: {table: scores.parquet\ncalibration: {}\n"))]


def nan_scores(d: Path) -> list[str]:
    f = score_frame(300)
    f.loc[7, "dv_score"] = np.nan
    write_frame(f, d / "scores.parquet")
    return ["calibrate", str(_spec(d, "data: {table: scores.parquet}\n"))]


def too_few_rows(d: Path) -> list[str]:
    write_frame(score_frame(3), d / "scores.parquet")
    return ["calibrate", str(_spec(d, "data: {table: scores.parquet}\n"))]


def output_is_a_file(d: Path) -> list[str]:
    (d / "taken").write_text("a file the user owns\n")
    return [
        "calibrate",
        str(_spec(d, "data: {table: scores.parquet}\noutputs: {directory: taken}\n")),
    ]


def output_under_a_file(d: Path) -> list[str]:
    (d / "taken").write_text("a file the user owns\n")
    return [
        "calibrate",
        str(_spec(d, "data: {table: scores.parquet}\n")),
        "-o",
        str(d / "taken" / "sub"),
    ]


def missing_table(d: Path) -> list[str]:
    return ["calibrate", str(_spec(d, "data: {table: nowhere.parquet}\n", table=""))]


def unknown_field(d: Path) -> list[str]:
    return [
        "calibrate",
        str(_spec(d, "data: {table: scores.parquet}\ncalibration: {budgett: 0.2}\n")),
    ]


CASES: list[tuple[Setup, int, str]] = [
    (trials_zero, EXIT_BAD_INPUT, r"--trials: must be a positive integer"),
    (txt_table, EXIT_BAD_INPUT, r"scores\.txt: cannot tell the table format .*data\.format"),
    (csv_extra_field, EXIT_BAD_INPUT, r"scores\.csv:22: row has 8 fields but the header has 7"),
    (jsonl_bad_line, EXIT_BAD_INPUT, r"log\.jsonl:21: malformed JSON line"),
    (log_is_folder, EXIT_BAD_INPUT, r"logs: is a folder"),
    (ambiguous_budget, EXIT_BAD_INPUT, r"pass --budget and/or --expert"),
    (edited_certificate, EXIT_BAD_INPUT, r"edited\.json: the certificate's content does not match"),
    (budget_out_of_range, EXIT_BAD_INPUT, r"spec\.yaml:3:\d+: .*budget"),
    (delta_zero, EXIT_BAD_INPUT, r"spec\.yaml:2:\d+: .*delta"),
    (malformed_yaml, EXIT_BAD_INPUT, r"spec\.yaml:\d+(:\d+)?: "),
    (nan_scores, EXIT_BAD_INPUT, r"scores\.parquet: .*dv_score.*(row|id)"),
    (
        too_few_rows,
        EXIT_BAD_INPUT,
        r"scores\.parquet: only \d+ calibration rows .*needs at least \d+ rows",
    ),
    (output_is_a_file, EXIT_BAD_INPUT, r"taken.*(not a folder|is a file|exists)"),
    (output_under_a_file, EXIT_BAD_INPUT, r"taken"),
    (missing_table, EXIT_BAD_INPUT, r"nowhere\.parquet.*not found"),
    (unknown_field, EXIT_BAD_INPUT, r"spec\.yaml:2:\d+: .*budgett"),
]


@pytest.mark.parametrize(("setup", "code", "needle"), CASES, ids=[c[0].__name__ for c in CASES])
def test_bad_input(tmp_path, capsys, setup: Setup, code: int, needle: str) -> None:
    argv = setup(tmp_path)
    capsys.readouterr()
    before = _snapshot(tmp_path)
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1] if err else ""
    assert "Traceback" not in err
    assert re.search(needle, last), err
    assert len(err.splitlines()) == 1, err  # usage errors too (argparse printed its usage first)
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing changed or lost
    assert sorted(set(after) - set(before)) == []  # and nothing half-written


def test_audit_json_flag_after_the_subcommand(tmp_path, capsys) -> None:
    cert, log = _certificate(tmp_path), _log(tmp_path, n=400)
    capsys.readouterr()
    code = main(
        [
            "audit",
            "--certificate",
            str(cert),
            "--budget",
            "0.3",
            "--log",
            str(log),
            "--out",
            str(tmp_path / "aud"),
            "--json",
        ]
    )
    assert code in (EXIT_OK, EXIT_NOT_CERTIFIED)
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == code and isinstance(out["compliant"], bool)


def test_yaml_floats_as_people_write_them(tmp_path) -> None:
    spec = _spec(
        tmp_path,
        "data: {table: scores.parquet}\ncalibration: {budget: 3e-1, delta: 1e-1}\n"
        "outputs: {directory: out}\n",
        n=800,
    )
    assert main(["calibrate", str(spec)]) == EXIT_OK
    raw = json.loads((tmp_path / "out" / "certificate.json").read_text())
    assert raw["results"][0]["budget"] == 0.3 and raw["results"][0]["delta"] == 0.1
