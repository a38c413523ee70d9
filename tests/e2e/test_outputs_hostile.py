"""Outputs under hostile conditions (issue 21): SIGTERM during the final write, temporaries a killed
run left, a hand-edited manifest, two runs writing into one folder."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_OK
from ctd_stats.reports.outputs import MANIFEST, manifest_seal, verify_seal

ROOT = Path(__file__).resolve().parents[2]
SPEC = """
data: {table: scores.parquet}
calibration: {budget: [0.2, 0.4], delta: 0.1}
evaluation: {repeats: 3, budgets: [0.2, 0.4]}
outputs: {directory: out, formats: [md, html]}
"""

# Runs `ctd run SPEC` in a child that sends itself SIGTERM right after the second output file was
# staged (a hidden temporary exists then): the final write is interrupted as by `kill -TERM`.
_TERM_DURING_WRITE = """
import os, signal, sys
from ctd_stats.reports import outputs
from ctd_stats.cli.entry import main
orig = outputs.OutputSet.write_bytes
def write_then_term(self, name, data):
    path = orig(self, name, data)
    if len(self._staged) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return path
outputs.OutputSet.write_bytes = write_then_term
sys.exit(main(sys.argv[1:]))
"""


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_sigterm_during_the_final_write_leaves_no_temporary(make_table, write_spec, tmp_path):
    """Before: kill -TERM left hidden .certificate.json.*.tmp / .study.json.*.tmp in the folder."""
    make_table()
    spec = write_spec(SPEC)
    proc = subprocess.run(
        [sys.executable, "-c", _TERM_DURING_WRITE, "run", str(spec)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CI": "1"},
    )
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "terminated (SIGTERM)" in proc.stderr and "Traceback" not in proc.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [], sorted(p.name for p in out.iterdir())


def test_temporaries_of_a_killed_run_are_removed_at_the_next_start(
    make_table, write_spec, tmp_path
):
    """A run killed by SIGKILL cannot clean up: the next run in the folder removes its temporaries,
    and only those (a user's hidden file of another pattern stays)."""
    make_table()
    spec = write_spec(SPEC.replace("evaluation: {repeats: 3, budgets: [0.2, 0.4]}\n", ""))
    out = tmp_path / "out"
    out.mkdir()
    left = [
        out / ".certificate.json.k2j4x_9a.tmp",
        out / ".manifest.json.abcdefgh.tmp",
        out / ".report.md.q1w2e3r4.tmp",
    ]
    for p in left:
        p.write_text("half")
    mine = [out / ".notes.txt.abcdefgh.tmp", out / ".certificate.json.keep"]
    for p in mine:
        p.write_text("user")
    assert main(["calibrate", str(spec)]) == EXIT_OK
    assert not any(p.exists() for p in left)
    assert all(p.read_text() == "user" for p in mine)


def _forge(out: Path, extra: dict[str, Path], *, reseal: bool) -> None:
    manifest = json.loads((out / MANIFEST).read_text())
    for name, path in extra.items():
        manifest["files"][name] = _sha(path)
    if reseal:
        manifest["seal"] = manifest_seal(manifest)
    (out / MANIFEST).write_text(json.dumps(manifest))


def test_hand_edited_manifest_cannot_make_force_delete_a_users_file(
    make_table, write_spec, tmp_path
):
    """Before: listing a user's file (with its sha256) in manifest.json made the next run delete it."""
    make_table()
    spec = write_spec(SPEC)
    out = tmp_path / "out"
    assert main(["calibrate", str(spec)]) == EXIT_OK
    assert verify_seal(json.loads((out / MANIFEST).read_text()))
    notes = out / "notes.txt"
    notes.write_text("my notes")
    _forge(out, {"notes.txt": notes}, reseal=False)
    assert not verify_seal(json.loads((out / MANIFEST).read_text()))
    spec.write_text(SPEC.replace("formats: [md, html]", "formats: [html]"))
    assert main(["calibrate", str(spec), "--force"]) == EXIT_OK
    assert notes.read_text() == "my notes"
    # The unverified manifest removed nothing, not even the previous run's report.md ...
    assert (out / "report.md").exists()
    # ... while a sealed one lets the next run remove its own stale file, never a user's file,
    # even when an editor recomputes the seal.
    _forge(out, {"notes.txt": notes}, reseal=True)
    spec.write_text(SPEC.replace("formats: [md, html]", "formats: [md]"))
    assert main(["calibrate", str(spec), "--force"]) == EXIT_OK
    assert notes.read_text() == "my notes"
    assert not (out / "report.html").exists()


def test_a_second_run_in_a_locked_folder_is_refused(make_table, write_spec, tmp_path, capsys):
    make_table()
    spec = write_spec(SPEC)
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["calibrate", str(spec)]) == EXIT_BAD_INPUT
    finally:
        os.close(fd)
    assert "another ctd run is writing into this folder" in capsys.readouterr().err
    assert list(out.iterdir()) == []
