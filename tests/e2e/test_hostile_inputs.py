"""Hostile inputs (issue 21): alias bombs, deep nesting, devices, FIFOs and oversized files are refused
quickly, in bounded memory, with one line naming the file and the limit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_BAD_INPUT, CTDInputError
from ctd_stats.spec.loader import YAMLLimits, load_yaml, parse_yaml

ROOT = Path(__file__).resolve().parents[2]


def _bomb(levels: int = 9, fan: int = 10) -> str:
    """The classic alias bomb: fan**levels leaves from levels*fan aliases."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * fan)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def _run_cli(args: list[str], timeout: float = 60) -> tuple[int, str, float, int]:
    """``(exit code, stderr, seconds, peak RSS of the child in MiB)`` of ``ctd ARGS`` in a subprocess."""
    code = (
        "import resource, sys\n"
        "from ctd_stats.cli.entry import main\n"
        "rc = main(sys.argv[1:])\n"
        # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's peak across exec,
        # so under a large pytest process it reported the parent, not the CLI).
        "hwm = [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')]\n"
        "peak = int(hwm[0]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print('PEAK', peak, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    seconds = time.perf_counter() - t0
    peak = next(
        (int(ln.split()[1]) // 1024 for ln in proc.stderr.splitlines() if ln.startswith("PEAK")), 0
    )
    err = "\n".join(ln for ln in proc.stderr.splitlines() if not ln.startswith("PEAK"))
    return proc.returncode, err, seconds, peak


# ----------------------------------------------------------------------------------------- YAML


def test_alias_bomb_is_refused_fast_in_small_memory(tmp_path: Path) -> None:
    """Before: `ctd validate` on this file ran past 120 s and reached 5 GB."""
    spec = tmp_path / "bomb.yaml"
    spec.write_text(
        "data: {table: t.csv}\nunknown:\n  " + _bomb().replace("\n", "\n  "), encoding="utf-8"
    )
    rc, err, seconds, peak = _run_cli(["validate", str(spec)], timeout=60)
    assert rc == EXIT_BAD_INPUT, err
    assert err.startswith(f"ctd: error: {spec}:") and "max_nodes" in err, err
    assert len(err.splitlines()) == 1
    assert seconds < 20 and peak < 400, (seconds, peak)


def test_alias_count_limit_names_the_limit() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 20) + "]\n"
    with pytest.raises(
        CTDInputError,
        match=r"^x.yaml:2:\d+: refused YAML: more than 10 aliases \(limit max_aliases\)",
    ):
        parse_yaml(text, "x.yaml", YAMLLimits(max_aliases=10))
    assert parse_yaml(text, "x.yaml", YAMLLimits(max_aliases=20)).data["b"] == [1] * 20


def test_deep_nesting_is_refused_not_a_crash(tmp_path: Path) -> None:
    """Before: a 50,000-deep list exited 3 (RecursionError, an 'internal error')."""
    spec = tmp_path / "deep.yaml"
    spec.write_text("data: " + "[" * 50_000 + "]" * 50_000 + "\n", encoding="utf-8")
    rc, err, _, _ = _run_cli(["validate", str(spec)])
    assert rc == EXIT_BAD_INPUT, err
    assert "max_depth" in err and str(spec) in err and "internal error" not in err


def test_block_nesting_limit_with_position() -> None:
    text = "".join("  " * i + f"k{i}:\n" for i in range(10)) + "  " * 10 + "v\n"
    with pytest.raises(
        CTDInputError, match=r"^y.yaml:\d+:\d+: refused YAML: nested more than 5 levels"
    ):
        parse_yaml(text, "y.yaml", YAMLLimits(max_depth=5))
    assert parse_yaml(text, "y.yaml", YAMLLimits(max_depth=12)).data["k0"]["k1"]["k2"]


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(CTDInputError, match="recursive alias"):
        parse_yaml("a: &a [1, *a]\n", "r.yaml")


def test_shared_aliases_within_limits_still_load() -> None:
    """Aliases are fine in moderation: the expanded tree is built as before (positions kept)."""
    doc = parse_yaml("base: &b {budget: [0.1, 0.2]}\nother: *b\n", "s.yaml")
    assert doc.data["other"] == {"budget": [0.1, 0.2]}
    assert doc.values[("base", "budget", 1)].line == 1


def test_spec_size_cap_names_file_and_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "big.yaml"
    p.write_text("a: " + "x" * 5000 + "\n", encoding="utf-8")
    monkeypatch.setenv("CTD_MAX_SPEC_BYTES", "4096")
    with pytest.raises(
        CTDInputError, match=rf"^{p}: file too large for a spec: .*CTD_MAX_SPEC_BYTES"
    ):
        load_yaml(p)


# ---------------------------------------------------------------------------- non-regular inputs


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_dev_zero_as_spec_and_table(tmp_path: Path) -> None:
    """Before: a table path of /dev/zero reached 6.9 GB in 15 s."""
    rc, err, seconds, peak = _run_cli(["validate", "/dev/zero"])
    assert rc == EXIT_BAD_INPUT and "/dev/zero: is a character device" in err, err
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "data: {table: /dev/zero, format: csv}\ncalibration: {pareto: false}\n", encoding="utf-8"
    )
    rc, err, seconds, peak = _run_cli(["validate", str(spec)])
    assert rc == EXIT_BAD_INPUT and "/dev/zero: is a character device" in err, err
    assert seconds < 20 and peak < 400


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_spec_and_table_do_not_hang(tmp_path: Path) -> None:
    """Before: a FIFO as the table path hung (no writer ever comes)."""
    fifo = tmp_path / "t.csv"
    os.mkfifo(fifo)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"data: {{table: {fifo}}}\ncalibration: {{pareto: false}}\n", encoding="utf-8")
    rc, err, _, _ = _run_cli(["validate", str(spec)], timeout=30)
    assert rc == EXIT_BAD_INPUT and f"{fifo}: is a FIFO" in err, err
    spec_fifo = tmp_path / "s.yaml"
    os.mkfifo(spec_fifo)
    rc, err, _, _ = _run_cli(["validate", str(spec_fifo)], timeout=30)
    assert rc == EXIT_BAD_INPUT and f"{spec_fifo}: is a FIFO" in err, err


def test_table_size_cap_names_the_file(tmp_path: Path, make_table, monkeypatch, capsys) -> None:
    table = make_table("scores.csv")
    spec = tmp_path / "spec.yaml"
    spec.write_text("data: {table: scores.csv}\ncalibration: {pareto: false}\n", encoding="utf-8")
    monkeypatch.setenv("CTD_MAX_TABLE_BYTES", "1000")
    assert main(["validate", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{table}: file too large for a score table" in err and "CTD_MAX_TABLE_BYTES" in err, err


def test_certificate_from_a_device_is_refused(capsys) -> None:
    assert (
        main(["audit", "--certificate", "/dev/zero", "--log", "/dev/null", "--budget", "0.3"])
        == EXIT_BAD_INPUT
    )
    assert "/dev/zero: is a character device" in capsys.readouterr().err


# ------------------------------------------------------------------------------ table validation


def _csv_spec(tmp_path: Path, text: str) -> Path:
    (tmp_path / "scores.csv").write_text(text, encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text("data: {table: scores.csv}\ncalibration: {pareto: false}\n", encoding="utf-8")
    return spec


def _table_text(n: int = 400, header: str = "id,split,dv_score") -> list[str]:
    return [header, *(f"r{i},,{(i * 37 % 101) / 101:.4f}" for i in range(n))]


def test_duplicate_column_in_the_csv_header_is_refused(tmp_path: Path, capsys) -> None:
    """Before: `dv_score` twice in the header passed validate (pandas renamed the second one)."""
    lines = _table_text(header="id,split,dv_score,dv_score")
    lines[1:] = [f"{ln},0.5" for ln in lines[1:]]
    spec = _csv_spec(tmp_path, "\n".join(lines) + "\n")
    assert main(["validate", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert (
        f"{tmp_path / 'scores.csv'}:1: column 'dv_score' appears twice in the header (columns 3 and 4)"
        in err
    )


def test_extra_field_in_the_first_row_is_named_as_such(tmp_path: Path, capsys) -> None:
    """Before: reported as "duplicate id ''" (pandas took the extra column as an index)."""
    lines = _table_text()
    lines[1] += ",EXTRA"
    spec = _csv_spec(tmp_path, "\n".join(lines) + "\n")
    assert main(["validate", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{tmp_path / 'scores.csv'}:2: row has 4 fields but the header has 3" in err, err
    assert "duplicate id" not in err


def test_valid_csv_still_validates(tmp_path: Path, capsys) -> None:
    spec = _csv_spec(tmp_path, "\n".join(_table_text()) + "\n")
    assert main(["validate", str(spec)]) == 0, capsys.readouterr().err


# --------------------------------------------------------------------------- writes name the file

_WRITE_WITH_FSIZE_LIMIT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
from ctd_stats.cli.entry import main
sys.exit(main(sys.argv[1:]))
"""


def test_file_too_large_on_write_names_the_file(tmp_path: Path) -> None:
    """Before: `ctd: error: File too large; check the path and free space` (no file named)."""
    spec = _csv_spec(tmp_path, "\n".join(_table_text()) + "\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _WRITE_WITH_FSIZE_LIMIT,
            "calibrate",
            str(spec),
            "-o",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
    assert f"{tmp_path / 'out'}/" in proc.stderr and "File too large" in proc.stderr, proc.stderr
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_audit_log_that_is_a_fifo_or_a_device_is_named_as_such(tmp_path: Path, capsys) -> None:
    """Before: /dev/zero as --log was reported as 'log file not found'."""
    from tests.e2e.test_bad_inputs import _certificate

    cert = _certificate(tmp_path)
    fifo = tmp_path / "log.jsonl"
    os.mkfifo(fifo)
    capsys.readouterr()
    for log, what in ((fifo, "is a FIFO"), (Path("/dev/zero"), "is a character device")):
        args = [
            "audit",
            "--certificate",
            str(cert),
            "--log",
            str(log),
            "--budget",
            "0.3",
            "--out",
            str(tmp_path / "a"),
        ]
        assert main(args) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert f"{log}: {what}" in err, err


def test_deeply_nested_json_is_bad_input_not_a_crash(tmp_path: Path, capsys) -> None:
    """Before: a 200,000-deep JSON certificate, manifest.json or log line exited 3 (RecursionError)."""
    from tests.e2e.test_bad_inputs import _certificate, _log

    cert, log = _certificate(tmp_path), _log(tmp_path)
    deep = "[" * 200_000 + "]" * 200_000
    bomb = tmp_path / "deep.json"
    bomb.write_text(deep, encoding="utf-8")
    capsys.readouterr()
    base = ["audit", "--budget", "0.3", "--out", str(tmp_path / "a")]
    assert main([*base, "--certificate", str(bomb), "--log", str(log)]) == EXIT_BAD_INPUT
    assert f"{bomb}: invalid JSON: nested too deeply" in capsys.readouterr().err
    (cert.parent / "manifest.json").write_text(deep, encoding="utf-8")
    assert main([*base, "--certificate", str(cert), "--log", str(log)]) in (0, 1)
    deep_log = tmp_path / "deep.jsonl"
    deep_log.write_text(
        '{"timestamp": "2026-01-01T00:00:00Z", "dv_score": ' + deep + "}\n", encoding="utf-8"
    )
    assert (
        main([*base, "--certificate", str(cert), "--log", str(deep_log), "--force"])
        == EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err
    assert "internal error" not in err and f"{deep_log}:1:" in err, err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_output_folder_that_is_a_fifo_or_device_is_named_as_such(
    make_table, tmp_path: Path, capsys
) -> None:
    """Before: -o /dev/null or a FIFO was refused as 'exists and is a file'."""
    make_table()
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "data: {table: scores.parquet}\ncalibration: {pareto: false}\n", encoding="utf-8"
    )
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    for target in (fifo, Path("/dev/null")):
        assert main(["calibrate", str(spec), "-o", str(target)]) == EXIT_BAD_INPUT
        assert f"{target}: exists and is not a folder" in capsys.readouterr().err
