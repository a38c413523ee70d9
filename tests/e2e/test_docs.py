"""The documentation's runnable examples run, as written.

Two tests. The fast one: a fenced block marked ``<!-- runnable -->`` (below). The slow one
(:func:`test_docs_run_as_written`): every ``bash`` block of README.md, docs/quickstart.md and
docs/howto.md, in that order, in one fresh copy of the repository with a fresh virtual environment
(the docs' own ``pip install -e .`` included); only a block preceded by
``<!-- docs-test: skip (reason) -->`` is left out.

A fenced ``bash`` or ``python`` block preceded by the line ``<!-- runnable -->`` in README.md or
docs/*.md is executed; the blocks of one file run in order in one fresh folder holding a copy of
``specs/`` (and the package data the specs point to), so later blocks see earlier blocks' files. A
bash block runs under ``set -euo pipefail`` with this interpreter's ``bin/`` first on PATH; a python
block runs in a fresh interpreter. ``<!-- runnable exit=1 -->`` expects that exit code instead of 0.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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
            raise AssertionError(
                f"{path}:{i + 1}: runnable marker not followed by a bash/python fence"
            )
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        out.append(
            (i + 2, fence.group(1), "\n".join(lines[i + 2 : end]) + "\n", int(m.group(1) or 0))
        )
    return out


DOCS = [
    p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if runnable_blocks(p)
]


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
        proc = subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == expected, (
            f"{doc.name}:{line}: {lang} block exited {proc.returncode} (expected {expected})\n"
            f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
        )


# ------------------------------------------------------------------------------------------------
# Every shell block of README.md, docs/quickstart.md and docs/howto.md, as written (issue 21).

#: The documents a new user reads in order; every ```bash block of them runs, in this order, in one
#: fresh copy of the repository with a fresh virtual environment first on PATH.
AS_WRITTEN = ("README.md", "docs/quickstart.md", "docs/howto.md")
SKIP = re.compile(r"^<!-- docs-test: skip \((.+)\) -->\s*$")
EXPECT = re.compile(r"^<!-- runnable exit=(\d+) -->\s*$")


def shell_blocks(path: Path) -> list[tuple[int, str, str | None, int]]:
    """``(line, code, skip reason or None, expected exit code)`` of every ```bash block of ``path``.

    A block is skipped only by an explicit ``<!-- docs-test: skip (reason) -->`` on the line before
    its fence (for steps that need the packaged models, a Ray cluster, or run the suite itself).
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if lines[i].strip() == "```bash":
                before = lines[i - 1] if i else ""
                skip = SKIP.match(before)
                expect = EXPECT.match(before)
                code = "\n".join(lines[i + 1 : end]) + "\n"
                out.append(
                    (
                        i + 1,
                        code,
                        skip.group(1) if skip else None,
                        int(expect.group(1)) if expect else 0,
                    )
                )
            i = end + 1
            continue
        i += 1
    return out


def test_every_shell_block_is_run_or_explicitly_skipped() -> None:
    """The skip marker is the only way out, and it always gives a reason."""
    for name in AS_WRITTEN:
        blocks = shell_blocks(ROOT / name)
        assert blocks, name
        assert sum(skip is None for _, _, skip, _ in blocks) >= 1, name
        for line, _, skip, _ in blocks:
            assert skip is None or len(skip) > 10, f"{name}:{line}: a skip needs its reason"


def _fresh_checkout(dest: Path) -> None:
    """The repository's tracked files (as they are in the working tree) copied to ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    for rel in filter(None, listed.decode().split("\0")):
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _fresh_venv(dest: Path) -> Path:
    """A new virtual environment that sees this environment's third-party packages but not ctd
    (so the docs' own ``pip install -e .`` installs the copy, offline, in seconds); its bin/."""
    import sysconfig

    subprocess.run([sys._base_executable, "-m", "venv", str(dest)], check=True)  # type: ignore[attr-defined]
    farm = dest / "deps"
    farm.mkdir()
    ours = ("ctd_stats", "ctd-stats", "__editable__", "probes", "serve")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(ours) and entry.suffix != ".pth":
            (farm / entry.name).symlink_to(entry)
    py = dest / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "_ctd_docs_test_deps.pth").write_text(f"{farm}\n", encoding="utf-8")
    return dest / "bin"


def _files_promised_by_readme() -> list[str]:
    """The files the README says ``ctd run specs/demo.yaml`` writes into ``out/demo/``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    para = text[text.index("The first command writes into `out/demo/`") :].split("\n\n")[0]
    return sorted(set(re.findall(r"`([\w.]+\.(?:html|md|json))`", para)))


@pytest.mark.slow
def test_docs_run_as_written(tmp_path: Path) -> None:
    """README, quickstart and how-to, every bash block in order, as a new user would type them."""
    work = tmp_path / "ctd"
    _fresh_checkout(work)
    bin_dir = _fresh_venv(tmp_path / "venv")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CTD_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", CI="1")
    try:
        for name in AS_WRITTEN:
            for line, code, skip, expected in shell_blocks(ROOT / name):
                if skip is not None:
                    continue
                proc = subprocess.run(
                    ["bash", "-c", "set -euo pipefail\n" + code],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                assert proc.returncode == expected, (
                    f"{name}:{line}: bash block exited {proc.returncode} (expected {expected})\n"
                    f"--- block\n{code}--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
                )
                if name == "README.md" and "ctd run specs/demo.yaml" in code:
                    written = sorted(p.name for p in (work / "out" / "demo").iterdir())
                    missing = [f for f in _files_promised_by_readme() if f not in written]
                    assert not missing, f"README promises {missing}; ctd run wrote {written}"
    finally:
        pid_file = work / "ctd-serve.pid"
        if pid_file.exists():  # a failed block left the documented gateway running
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
