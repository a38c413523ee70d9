"""The local audit reads a folder or a glob of Parquet parts as one log, in path order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctd_stats.audit.run import audit_log
from ctd_stats.errors import CTDInputError


def _frame(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    score = rng.normal(size=n)
    return pd.DataFrame(
        {
            "timestamp": np.arange(n, dtype=np.float64) * 60.0,
            "dv_score": score,
            "delegated": score > 0.5,
            "group": rng.choice(["a", "b"], n),
        }
    )


def _content(res: object) -> dict[str, object]:
    d = res.to_dict()  # type: ignore[attr-defined]
    return {k: v for k, v in d.items() if k not in ("created_at", "log", "log_format")}


def test_folder_and_glob_equal_one_file(tmp_path: Path) -> None:
    frame = _frame()
    frame.to_parquet(tmp_path / "all.parquet", index=False)
    for k, idx in enumerate(np.array_split(np.arange(len(frame)), 3)):
        (tmp_path / "parts" / f"h={k}").mkdir(parents=True)
        frame.iloc[idx].to_parquet(tmp_path / "parts" / f"h={k}" / "p.parquet", index=False)
    one = audit_log(tmp_path / "all.parquet", threshold=0.5, budget=0.35, chunk_rows=128)
    folder = audit_log(tmp_path / "parts", threshold=0.5, budget=0.35, chunk_rows=128)
    glob = audit_log(str(tmp_path / "parts" / "*" / "*.parquet"), threshold=0.5, budget=0.35)
    assert _content(folder) == _content(one) == _content(glob)
    assert folder.rate.n == 600


def test_folder_of_csv_and_empty_glob_refused(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    _frame(10).to_csv(tmp_path / "logs" / "a.csv", index=False)
    with pytest.raises(CTDInputError, match="no Parquet files"):
        audit_log(tmp_path / "logs", threshold=0.5, budget=0.3)
    with pytest.raises(CTDInputError, match="no file matches"):
        audit_log(str(tmp_path / "none-*.parquet"), threshold=0.5, budget=0.3)
