"""Benchmark: audit a 10^7-row Parquet decision log in bounded memory.

The log (timestamp, dv_score, delegated, group) is generated once per session into a temporary
directory, written in row groups of 10^6 rows. The audit runs in a fresh Python process so that its
peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which includes the interpreter,
numpy/pandas/pyarrow/scipy and Arrow's own allocations, unlike ``tracemalloc``) measures the audit
alone. Asserts peak RSS <= 500 MB and reports rows per second.

Run with ``pytest benchmarks/test_bench_audit.py --benchmark-only -s``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROWS = 10_000_000
ROW_GROUP = 1_000_000
THRESHOLD, BUDGET = 0.9, 0.1
PEAK_MB_LIMIT = 500.0

_CHILD = r"""
import json, resource, sys, time
from ctd_stats.audit import audit_log
t0 = time.perf_counter()
r = audit_log(sys.argv[1], threshold=float(sys.argv[2]), budget=float(sys.argv[3]), window="1h")
dt = time.perf_counter() - t0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": dt, "rows": r.rate.n, "peak_mb": peak_mb, "compliant": r.verdict.compliant,
                  "k": r.rate.k, "windows": len(r.windows), "groups": len(r.groups)}))
"""


@pytest.fixture(scope="session")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit_bench") / "log.parquet"
    rng = np.random.default_rng(0)
    schema = pa.schema(
        [
            ("timestamp", pa.timestamp("ns", tz="UTC")),
            ("dv_score", pa.float64()),
            ("delegated", pa.bool_()),
            ("group", pa.dictionary(pa.int8(), pa.string())),
        ]
    )
    start = np.datetime64("2024-01-01T00:00:00", "ns").astype(np.int64)
    names = pa.array(["en", "de", "fr", "es", "ja"])
    with pq.ParquetWriter(path, schema) as writer:
        for s in range(0, ROWS, ROW_GROUP):
            m = min(ROW_GROUP, ROWS - s)
            score = rng.random(m) ** 1.2  # P(score > 0.9) ~ 0.084
            ts = start + (s + np.arange(m, dtype=np.int64)) * 250_000_000  # 4 decisions a second
            table = pa.table(
                {
                    "timestamp": pa.array(ts, pa.timestamp("ns", tz="UTC")),
                    "dv_score": score,
                    "delegated": score > THRESHOLD,
                    "group": pa.DictionaryArray.from_arrays(
                        pa.array(rng.integers(0, 5, m).astype(np.int8)), names
                    ),
                },
                schema=schema,
            )
            writer.write_table(table, row_group_size=ROW_GROUP)
    return path


@pytest.mark.slow
def test_bench_audit_10m_rows(benchmark, big_log: Path) -> None:
    results: list[dict[str, float]] = []

    def run() -> None:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(big_log), str(THRESHOLD), str(BUDGET)],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(run, rounds=1, iterations=1)
    r = results[-1]
    rows_per_s = r["rows"] / r["seconds"]
    benchmark.extra_info.update({"rows_per_s": rows_per_s, "peak_mb": r["peak_mb"], **r})
    print(
        f"\naudit of {r['rows']:,} rows: {r['seconds']:.1f} s in the audit, {rows_per_s:,.0f} rows/s, "
        f"peak RSS {r['peak_mb']:.0f} MB ({r['windows']} windows, {r['groups']} groups)"
    )
    assert r["rows"] == ROWS and r["compliant"]
    assert r["peak_mb"] <= PEAK_MB_LIMIT
