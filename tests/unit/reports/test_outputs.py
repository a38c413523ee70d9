"""Outputs: a command writes only its own files, atomically, with a manifest; it never loses others'.

Each test states the defect it guards against (issue: output folders were copied and swapped whole).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, CTDInputError
from ctd_stats.reports.outputs import MANIFEST, check_manifest, output_set

SPEC = """
data: {table: scores.parquet}
calibration: {budget: [0.2, 0.4], delta: 0.1}
outputs: {directory: out, formats: [md, json]}
"""


def _snapshot(folder: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "link->" + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


def test_existing_folder_keeps_every_foreign_file_and_symlink(make_table, write_spec, tmp_path):
    make_table()
    spec = write_spec(SPEC)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    (out / "loop").symlink_to(out)  # a symlink loop: must be neither followed nor copied
    (out / "link.txt").symlink_to(out / "notes.txt")
    before = _snapshot(out)
    inode = out.stat().st_ino
    assert main(["calibrate", str(spec)]) == EXIT_OK
    after = _snapshot(out)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing of theirs changed
    assert set(after) - set(before) == {"certificate.json", "report.md", "report.json", MANIFEST}
    assert out.stat().st_ino == inode  # the folder itself was not replaced
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_refuses_to_overwrite_a_file_no_run_wrote(make_table, write_spec, tmp_path, capsys):
    make_table()
    spec = write_spec(SPEC)
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("my own notes")
    assert main(["calibrate", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "report.md" in err and "--force" in err and err.count("\n") == 1
    assert (out / "report.md").read_text() == "my own notes"
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]
    assert main(["calibrate", str(spec), "--force"]) == EXIT_OK
    assert (out / "report.md").read_text() != "my own notes"


def test_rerun_of_the_same_spec_updates_and_removes_its_stale_files(
    make_table, write_spec, tmp_path
):
    make_table()
    spec = write_spec(SPEC)
    out = tmp_path / "out"
    assert main(["calibrate", str(spec)]) == EXIT_OK
    first = json.loads((out / MANIFEST).read_text())
    assert set(first["files"]) == {"certificate.json", "report.md", "report.json"}
    spec.write_text(SPEC.replace("formats: [md, json]", "formats: [html]"))
    # A different spec (its hash changed) is another run: refused without --force ...
    assert main(["calibrate", str(spec)]) == EXIT_BAD_INPUT
    assert json.loads((out / MANIFEST).read_text())["run_id"] == first["run_id"]
    # ... and with --force the previous run's untouched files are not left beside the new ones.
    assert main(["calibrate", str(spec), "--force"]) == EXIT_OK
    assert sorted(p.name for p in out.iterdir()) == ["certificate.json", MANIFEST, "report.html"]


def test_a_file_edited_by_someone_is_not_removed_as_stale(make_table, write_spec, tmp_path):
    make_table()
    spec = write_spec(SPEC)
    out = tmp_path / "out"
    assert main(["calibrate", str(spec)]) == EXIT_OK
    (out / "report.md").write_text("annotated by a person")
    spec.write_text(SPEC.replace("formats: [md, json]", "formats: [json]"))
    assert main(["calibrate", str(spec), "--force"]) == EXIT_OK
    assert (out / "report.md").read_text() == "annotated by a person"


def test_audit_out_existing_file_is_refused_and_kept(tmp_path, capsys):
    target = tmp_path / "audit-result"
    target.write_text("precious")
    with pytest.raises(CTDInputError, match="exists and is a file"):
        with output_set(target, "audit"):
            pass
    assert target.read_text() == "precious"
    assert not list(tmp_path.glob(".*"))


def test_interrupted_run_leaves_no_partial_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text("old")
    with pytest.raises(KeyboardInterrupt), output_set(out, "x") as files:
        files.write_text("b.txt", "new b")
        raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == ["a.json"]


def test_interrupt_in_a_command_exits_130_without_traceback(
    make_table, write_spec, monkeypatch, capsys
):
    make_table()
    spec = write_spec(SPEC)

    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr("ctd_stats.certificate.build.calibrate_spec", boom)
    assert main(["calibrate", str(spec)]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "Traceback" not in err and "interrupted" in err


def test_manifest_detects_files_of_another_run(make_table, write_spec, tmp_path):
    make_table()
    spec = write_spec(SPEC)
    out = tmp_path / "out"
    assert main(["calibrate", str(spec)]) == EXIT_OK
    cert = out / "certificate.json"
    assert check_manifest(cert) is None
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "calibrate" and len(manifest["spec_sha256"]) == 64
    cert.write_text(cert.read_text().replace('"seed": 0', '"seed": 1'))
    warning = check_manifest(cert)
    assert warning is not None and "changed since the run" in warning
