"""Bad and unusual logs: clear errors naming the row, or flagged rows; never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from audit_fixtures import BUDGET, TAU, make_log

from ctd_stats.audit import audit_log
from ctd_stats.errors import CTDInputError


def audit(log, **kw):
    return audit_log(log, threshold=kw.pop("threshold", TAU), budget=BUDGET, **kw)


def write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True, date_format="iso")
    else:
        df.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_formats_and_chunking_agree_with_frame(tmp_path: Path, ext: str) -> None:
    df = make_log(5000, seed=2)
    ref = audit(df)
    r = audit(write(df, tmp_path / f"log{ext}"), chunk_rows=777)
    assert (r.rate.n, r.rate.k) == (ref.rate.n, ref.rate.k)
    assert r.sequential.log_evidence == pytest.approx(ref.sequential.log_evidence)
    assert r.integrity.n_mismatch == 0 and r.verdict.compliant
    assert [g.n for g in r.groups] == [g.n for g in ref.groups]


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_missing_columns(tmp_path: Path, ext: str) -> None:
    df = make_log(100)
    with pytest.raises(CTDInputError, match="missing timestamp column"):
        audit(write(df.drop(columns="timestamp"), tmp_path / f"a{ext}"))
    with pytest.raises(CTDInputError, match="needs a score column"):
        audit(write(df.drop(columns=["dv_score", "delegated"]), tmp_path / f"b{ext}"))
    with pytest.raises(CTDInputError, match="decision column 'made_up' not found"):
        audit(write(df, tmp_path / f"c{ext}"), decision_column="made_up")


def test_non_boolean_decision_names_the_row(tmp_path: Path) -> None:
    df = make_log(50).astype({"delegated": object})
    df.loc[3, "delegated"] = "yes"
    with pytest.raises(
        CTDInputError, match=r"row 3 \(line 5\), column 'delegated': decision 'yes'"
    ):
        audit(write(df, tmp_path / "log.csv"))
    df.loc[3, "delegated"] = 2
    with pytest.raises(CTDInputError, match=r"row 3 \(line 4\).*decision 2 is not boolean"):
        audit(write(df, tmp_path / "log.jsonl"))
    df.loc[3, "delegated"] = None
    with pytest.raises(CTDInputError, match=r"row 3.*is missing"):
        audit(df)


def test_accepted_decision_spellings() -> None:
    df = make_log(8, groups=False)
    df["delegated"] = [True, "false", 0, 1, "TRUE", " 0 ", 1.0, "f"]
    df["dv_score"] = [0.95, 0.1, 0.2, 0.99, 0.91, 0.3, 0.97, 0.5]
    r = audit(df)
    assert r.rate.k == 4 and r.integrity.n_mismatch == 0


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_empty_logs(tmp_path: Path, ext: str) -> None:
    p = tmp_path / f"empty{ext}"
    p.write_bytes(b"")
    with pytest.raises(CTDInputError, match="empty"):
        audit(p)
    # header / schema only, no rows
    if ext == ".csv":
        p.write_text("timestamp,dv_score,delegated\n")
    elif ext == ".jsonl":
        p.write_text("\n")
    else:
        pq.write_table(
            pa.table(
                {"timestamp": pa.array([], pa.float64()), "delegated": pa.array([], pa.bool_())}
            ),
            p,
        )
    with pytest.raises(CTDInputError, match=r"empty|no rows"):
        audit(p)


def test_mixed_types(tmp_path: Path) -> None:
    rows = [{"timestamp": "2024-01-01T00:00:00Z", "dv_score": 0.5, "delegated": False}] * 5
    rows = [dict(r) for r in rows]
    rows[2]["timestamp"] = 1704067200
    p = tmp_path / "mixed.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(CTDInputError, match=r"row 2 \(line 3\).*timestamp 1704067200 mixes types"):
        audit(p)
    rows[2]["timestamp"] = "2024-01-01T00:00:01Z"
    rows[4]["dv_score"] = "high"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(CTDInputError, match=r"row 4 \(line 5\).*score 'high' is not a number"):
        audit(p)
    rows[4]["dv_score"] = 0.5
    rows[1]["timestamp"] = "yesterday"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(CTDInputError, match=r"row 1.*not an ISO-8601"):
        audit(p)
    p.write_text('{"timestamp": 1, "delegated": true}\n{not json\n')
    with pytest.raises(CTDInputError, match="malformed JSON"):
        audit(p)


def test_mixed_timestamp_kinds_across_chunks() -> None:
    df = pd.DataFrame({"timestamp": [1.0, 2.0, "2024-01-01"], "delegated": [0, 0, 0]})
    with pytest.raises(CTDInputError, match=r"mixes types|mixes numeric"):
        audit(df, chunk_rows=2)


def test_different_threshold_than_certified_is_flagged() -> None:
    df = make_log(10_000, seed=4, groups=False)
    df["delegated"] = df["dv_score"] > 0.85  # deployed with the wrong threshold
    wrong = int(((df["dv_score"] > 0.85) & (df["dv_score"] <= TAU)).sum())
    r = audit(df)
    ig = r.integrity
    assert ig.n_mismatch == wrong == ig.n_delegated_at_or_below and ig.n_kept_above == 0
    assert len(ig.mismatch_rows) == 20 and all(
        m.delegated and m.score <= TAU for m in ig.mismatch_rows
    )
    first = int(np.flatnonzero((df["dv_score"] > 0.85) & (df["dv_score"] <= TAU))[0])
    assert ig.mismatch_rows[0].row == first
    assert ig.implied_threshold_low is not None and ig.implied_threshold_low <= 0.85
    assert not r.verdict.compliant and r.verdict.integrity_violation
    assert "contradict the certified threshold" in r.verdict.headline
    lenient = audit(df, fail_on_mismatch=False)
    assert not lenient.verdict.integrity_violation


def test_unsorted_timestamps_are_sorted_with_warning() -> None:
    df = make_log(3000, seed=5)
    shuffled = df.sample(frac=1.0, random_state=0)
    r = audit(shuffled, chunk_rows=500)
    ref = audit(df)
    assert r.integrity.sorted_by_time and not r.integrity.monotone
    assert any("not in time order" in w for w in r.warnings)
    assert (r.rate.n, r.rate.k) == (ref.rate.n, ref.rate.k)
    assert r.sequential.log_evidence == pytest.approx(ref.sequential.log_evidence)
    assert r.trace.k == ref.trace.k


def test_scores_only_and_decisions_only(tmp_path: Path) -> None:
    df = make_log(2000, seed=6, groups=False)
    r = audit(df.drop(columns="delegated"))
    assert r.rate.k == int(df["delegated"].sum()) and any("derived" in w for w in r.warnings)
    r = audit(df.drop(columns="dv_score"))
    assert r.rate.k == int(df["delegated"].sum()) and not r.integrity.has_scores
    bad = df.drop(columns="delegated")
    bad.loc[7, "dv_score"] = np.nan
    with pytest.raises(CTDInputError, match=r"row 7.*score is missing"):
        audit(bad)


def test_misc_input_errors(tmp_path: Path) -> None:
    with pytest.raises(CTDInputError, match="not found"):
        audit(tmp_path / "nope.csv")
    (tmp_path / "log.txt").write_text("x")
    with pytest.raises(CTDInputError, match="format"):
        audit(tmp_path / "log.txt")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(CTDInputError, match="Parquet"):
        audit(tmp_path / "bad.parquet")
    df = make_log(10)
    with pytest.raises(CTDInputError, match="window"):
        audit(df, window="5 parsecs")
    with pytest.raises(CTDInputError, match="budget"):
        audit_log(df, threshold=TAU, budget=1.5)
    df2 = df.copy()
    df2.loc[2, "timestamp"] = pd.NaT
    with pytest.raises(CTDInputError, match=r"row 2.*missing"):
        audit(df2)
