"""The documentation's runnable examples run, as written.

A fenced ``bash`` or ``python`` block preceded by the line ``<!-- runnable -->`` in README.md or
docs/*.md is executed; the blocks of one file run in order in one fresh folder holding a copy of
``specs/`` (and the package data the specs point to), so later blocks see earlier blocks' files. A
bash block runs under ``set -euo pipefail`` with this interpreter's ``bin/`` first on PATH; a python
block runs in a fresh interpreter. ``<!-- runnable exit=1 -->`` expects that exit code instead of 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- runnable(?: exit=(\d+))? -->\s*$")
FENCE = re.compile(r"^```(bash|python)\s*$")


def runnable_blocks(path: Path) -> list[tuple[int, str, str, int]]:
    """``(line, language, code, expected exit code)`` of every marked block in ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for i, line in enumerate(lines[:-1]):
        m = MARKER.match(line)
        if not m:
            continue
        fence = FENCE.match(lines[i + 1])
        if not fence:
            raise AssertionError(f"{path}:{i + 1}: runnable marker not followed by a bash/python fence")
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        out.append((i + 2, fence.group(1), "\n".join(lines[i + 2 : end]) + "\n", int(m.group(1) or 0)))
    return out


DOCS = [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if runnable_blocks(p)]


def test_some_blocks_are_marked() -> None:
    names = {p.name for p in DOCS}
    assert {"quickstart.md", "audit.md"} <= names, names


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_runnable_blocks(doc: Path, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    (tmp_path / "ctd_stats").mkdir()
    (tmp_path / "ctd_stats" / "data").symlink_to(ROOT / "ctd_stats" / "data")  # read-only use
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONSAFEPATH"] = "1"  # the folder's ctd_stats/data link must not shadow the package
    env.pop("CTD_CERTIFICATE_KEY", None)
    env.pop("CTD_CERTIFICATE_KEY_FILE", None)
    for line, lang, code, expected in runnable_blocks(doc):
        if lang == "bash":
            cmd = ["bash", "-c", "set -euo pipefail\n" + code]
        else:
            cmd = [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == expected, (
            f"{doc.name}:{line}: {lang} block exited {proc.returncode} (expected {expected})\n"
            f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
        )
