"""The architecture's rules, checked on the source tree (see ../shared/design.md, "Layout").

* The core never imports the probes layer or torch: every ``ctd_stats`` module imports in a fresh
  interpreter in which ``probes``, ``torch`` and ``transformers`` are made unimportable.
* Small pieces: no module over 500 lines and no function over 120 lines in ``ctd_stats/`` and
  ``probes/``.
* One definition per concept: the score table, the delegate rule, Clopper–Pearson, AUROC and the
  score reference are each defined once.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ctd_stats", "probes")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 120


def _modules(package: str) -> list[str]:
    out = []
    for f in sorted((ROOT / package).rglob("*.py")):
        if f.name == "__main__.py":  # runs the CLI when imported
            continue
        rel = f.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out.append(".".join(parts))
    return out


BLOCKER = """
import importlib, importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("probes", "torch", "transformers", "ray"):
            raise ModuleNotFoundError(f"blocked: {name}", name=name)
        return None

sys.meta_path.insert(0, Block())
failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:  # report every failure, not only the first
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_core_imports_without_probes_or_torch():
    modules = _modules("ctd_stats")
    assert len(modules) > 30
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, *modules], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_blocker_would_catch_an_import_of_probes():
    """The check above is not vacuous: a module that imports probes fails under the blocker."""
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, "probes.spec"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1 and "blocked: probes" in proc.stdout


def _sizes() -> tuple[list[str], list[str]]:
    big_modules, big_functions = [], []
    for package in PACKAGES:
        for f in sorted((ROOT / package).rglob("*.py")):
            src = f.read_text(encoding="utf-8")
            rel = f.relative_to(ROOT)
            if src.count("\n") > MAX_MODULE_LINES:
                big_modules.append(f"{rel}: {src.count(chr(10))} lines")
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        big_functions.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    return big_modules, big_functions


def test_no_god_modules_or_functions():
    big_modules, big_functions = _sizes()
    assert not big_modules, big_modules
    assert not big_functions, big_functions


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("class", "ScoreTable"),
        ("class", "Cascade"),
        ("class", "ScoreReference"),
        ("def", "clopper_pearson"),
        ("def", "auroc"),
        ("def", "delegate"),
    ],
)
def test_one_definition_per_concept(kind: str, name: str):
    found = []
    for package in PACKAGES:
        for f in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(f.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                is_kind = isinstance(node, ast.ClassDef) if kind == "class" else isinstance(
                    node, ast.FunctionDef
                )
                if is_kind and node.name == name:
                    found.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    if name == "delegate":
        # Calibration/BudgetCertificate.delegate are one-line calls of Cascade.delegate; check that.
        for where in found:
            path = ROOT / where.split(":")[0]
            if path.name != "cascade.py":
                assert "Cascade.rule(" in path.read_text(encoding="utf-8"), where
        return
    assert len(found) == 1, found
