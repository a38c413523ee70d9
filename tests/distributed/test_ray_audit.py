"""A partitioned Parquet log audited on Ray equals the local audit of the same rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ctd_stats.audit.run import audit_log

pytestmark = pytest.mark.ray

#: Fields that name the log or the moment, not the audit's content.
_VOLATILE = ("created_at", "log", "log_format")


def _frame(n: int = 3000, seed: int = 0, shuffle: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.normal(size=n)
    delegated = score > 0.8
    delegated[rng.choice(n, 5, replace=False)] ^= True  # a few threshold mismatches
    ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 7, unit="s")
    frame = pd.DataFrame(
        {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "dv_score": score,
            "delegated": delegated,
            "group": rng.choice(["en", "fr", "de"], n),
        }
    )
    if shuffle:  # out of time order in a few places
        frame.iloc[100:140] = frame.iloc[100:140].iloc[::-1].to_numpy()
    return frame


def _write_parts(frame: pd.DataFrame, root: Path, parts: int = 4) -> Path:
    for k, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        folder = root / f"day={k}"
        folder.mkdir(parents=True)
        frame.iloc[chunk].to_parquet(folder / f"part-{k:03d}.parquet", index=False)
    return root


def _content(result: Any) -> dict[str, Any]:
    d = result.to_dict()
    for key in _VOLATILE:
        d.pop(key)
    return d


@pytest.mark.parametrize("shuffle", [False, True])
def test_ray_audit_equals_local(ray_cluster: Any, tmp_path: Path, shuffle: bool) -> None:
    frame = _frame(shuffle=shuffle)
    single = tmp_path / "log.parquet"
    frame.to_parquet(single, index=False)
    folder = _write_parts(frame, tmp_path / "logs")
    kw: dict[str, Any] = {"threshold": 0.8, "budget": 0.25, "alpha": 0.05, "chunk_rows": 700}
    one_file = audit_log(single, **kw)
    local = audit_log(folder, **kw)
    remote = audit_log(folder, engine="ray", **kw)
    globbed = audit_log(str(tmp_path / "logs" / "day=*" / "*.parquet"), engine="ray", **kw)
    assert _content(local) == _content(one_file)
    assert _content(remote) == _content(local)
    assert _content(globbed) == _content(local)
    assert remote.rate.k == local.rate.k and remote.rate.n == local.rate.n == 3000
    assert remote.verdict.compliant == local.verdict.compliant
    assert remote.integrity.n_mismatch == 5
    assert remote.integrity.sorted_by_time is shuffle


def test_ray_audit_cli(
    ray_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from ctd_stats.cli.entry import main
    from tests.e2e.test_bad_inputs import _certificate

    cert = _certificate(tmp_path)
    folder = _write_parts(_frame(400), tmp_path / "logs")
    capsys.readouterr()
    outs = []
    for engine in ("local", "ray"):
        code = main(
            [
                "audit",
                "--certificate",
                str(cert),
                "--budget",
                "0.3",
                "--log",
                str(folder),
                "--engine",
                engine,
                "--out",
                str(tmp_path / engine),
                "--json",
            ]
        )
        outs.append((code, json.loads(capsys.readouterr().out)["headline"]))
        audit = json.loads((tmp_path / engine / "audit.json").read_text())
        outs.append({k: v for k, v in audit.items() if k not in _VOLATILE})
    assert outs[0] == outs[2] and outs[1] == outs[3]


def test_ray_audit_bad_value_is_input_error(ray_cluster: Any, tmp_path: Path) -> None:
    from ctd_stats.errors import CTDInputError

    frame = _frame(200)
    frame["delegated"] = frame["delegated"].map({True: "yes", False: "no"})
    folder = _write_parts(frame, tmp_path / "logs", parts=2)
    with pytest.raises(CTDInputError, match="decision 'no' is not boolean"):
        audit_log(folder, threshold=0.8, budget=0.25, engine="ray")
