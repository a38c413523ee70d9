"""Issue 20 item 6: `ctd run` draws figures only for report formats it writes, and `ctd validate`
imports neither pandas, scipy nor matplotlib (the speed targets live in benchmarks/)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctd_stats.cli.entry import main
from ctd_stats.reports.document import Figure
from ctd_stats.stats.budget_floor import smallest_certifiable_budget
from ctd_stats.stats.planning import certifiable_budget
from ctd_stats.table.read import _arrow_floats, _arrow_text_stripped, _stripped
from tests.conftest import score_frame, write_frame

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "scipy", "matplotlib")


def _spec(tmp_path: Path, formats: str) -> Path:
    write_frame(score_frame(500, weak=True), tmp_path / "scores.parquet")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "data: {table: scores.parquet}\n"
        "calibration: {budget: [0.2, 0.3], delta: 0.1, pareto: true}\n"
        "evaluation: {repeats: 3, budgets: [0.1, 0.2, 0.3]}\n"
        f"outputs: {{directory: out, formats: {formats}}}\n",
        encoding="utf-8",
    )
    return spec


def _heavy_after(args: list[str]) -> dict[str, Any]:
    """Run ``ctd ARGS`` in a fresh interpreter; its exit code and the heavy modules it imported."""
    code = (
        "import json, sys\n"
        "from ctd_stats.cli.entry import main\n"
        f"rc = main({args!r})\n"
        f"print(json.dumps({{'rc': rc, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Captions of every figure rendered (counted on the way to PNG)."""
    seen: list[str] = []
    original = Figure.from_matplotlib.__func__  # type: ignore[attr-defined]

    def count(cls: type[Figure], fig: Any, caption: str = "", dpi: int = 110) -> Figure:
        seen.append(caption)
        return original(cls, fig, caption, dpi)

    monkeypatch.setattr(Figure, "from_matplotlib", classmethod(count))
    return seen


def test_json_only_run_draws_no_figure(tmp_path: Path, drawn: list[str]) -> None:
    """Before: 16 figures were drawn for the demo whatever the formats. The md run below shows the
    counter does see figures, so the zero is not vacuous."""
    spec = _spec(tmp_path, "[json]")
    assert main(["run", str(spec)]) in (0, 1)
    assert drawn == []
    assert (tmp_path / "out" / "study.json").is_file()
    assert not (tmp_path / "out" / "report.md").exists()
    assert main(["run", str(spec), "-o", str(tmp_path / "md"), "--json"]) in (0, 1)
    assert not drawn  # --json is stdout only, still no report format
    spec_md = _spec(tmp_path, "[md, json]")
    assert main(["run", str(spec_md), "-o", str(tmp_path / "with_md")]) in (0, 1)
    assert len(drawn) >= 6  # study and calibration figures
    assert (tmp_path / "with_md" / "report.md").is_file()


def test_json_only_run_never_imports_matplotlib(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "[json]")
    got = _heavy_after(["run", str(spec)])
    assert got["rc"] in (0, 1)
    assert "matplotlib" not in got["heavy"]


@pytest.mark.parametrize("which", ["demo", "parquet", "csv"])
def test_validate_imports_no_pandas_scipy_matplotlib(tmp_path: Path, which: str) -> None:
    """Before: pandas (table reading) and scipy (p-values, planning) were imported (1.7 s)."""
    if which == "demo":
        spec = REPO / "specs" / "demo.yaml"
    else:
        spec = _spec(tmp_path, "[json]")
        if which == "csv":
            write_frame(score_frame(500, weak=True), tmp_path / "scores.csv")
            spec.write_text(spec.read_text().replace("scores.parquet", "scores.csv"))
    got = _heavy_after(["validate", str(spec)])
    assert got["rc"] == 0
    # a CSV table is parsed with pandas (its error messages name the line); nothing else is heavy
    assert got["heavy"] == ([] if which != "csv" else ["pandas"])


@pytest.mark.parametrize("n", [*range(1, 60), 100, 490, 999, 4519, 10_007, 123_456, 1_000_000])
def test_validate_floor_is_the_planning_floor(n: int) -> None:
    """validate's scipy-free floor is bit-identical to planning.certifiable_budget(n, δ)."""
    for delta in (1e-4, 0.01, 0.05, 0.1, 0.2, 0.5, 0.9):
        assert smallest_certifiable_budget(n, delta) == certifiable_budget(n, delta), (n, delta)


def _chunked(values: list[Any], typ: pa.DataType, tmp_path: Path) -> pa.ChunkedArray:
    """The column as read back from Parquet, cut into chunks that start at offsets ≠ 0."""
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"c": pa.array(values, type=typ)}), path)
    with pq.ParquetFile(path) as f:
        whole = f.read(columns=["c"]).column(0).combine_chunks()
    cuts = [0, 3, 11, 12, 26, len(values)]
    return pa.chunked_array([whole.slice(i, j - i) for i, j in itertools.pairwise(cuts)], type=typ)


@pytest.mark.parametrize(
    "typ",
    [pa.int8(), pa.int64(), pa.uint64(), pa.float16(), pa.float32(), pa.float64(), pa.bool_()],
)
def test_numeric_columns_without_pandas_match_pyarrow(tmp_path: Path, typ: pa.DataType) -> None:
    rng = np.random.default_rng(3)
    if pa.types.is_boolean(typ):
        raw: list[Any] = [bool(v) for v in rng.integers(0, 2, 40)]
    elif pa.types.is_floating(typ):
        raw = [float(v) for v in rng.normal(size=40).astype(typ.to_pandas_dtype())]
    else:
        hi = 100 if typ.bit_width == 8 else 2**62
        raw = [int(v) for v in rng.integers(0, hi, 40)]
    raw = [None if i % 5 == 2 else v for i, v in enumerate(raw)]
    col = _chunked(raw, typ, tmp_path)
    assert col.num_chunks > 1
    for part in (col, col.slice(3, 30), col.slice(9)):
        want = np.array(part.to_numpy(), dtype=np.float64)
        np.testing.assert_array_equal(_arrow_floats(part), want)


def test_text_columns_without_pandas_match_the_pandas_reading(tmp_path: Path) -> None:
    ws = [chr(i) for i in range(0x3000 + 1) if chr(i).isspace()]
    raw = [f"{w}id {i}{w}" if i % 4 else None for i, w in enumerate(ws * 3)]
    raw += ["\u200bkeep\u200b", "", "  "]
    col = _chunked(raw, pa.large_string(), tmp_path)
    for part in (col, col.slice(5, 50)):
        got = _arrow_text_stripped(part)
        assert got.dtype == object
        assert got.tolist() == _stripped(part.to_pandas()).tolist()
