"""The deployable monitor bundle: saved by `ctd scores --save-monitor`, scores texts as the table did,
and lets `ctd serve --probes` decide on raw texts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ctd_stats.errors import CTDInputError
from probes.monitor import MANIFEST, TextMonitor, read_manifest
from probes.pipeline import build_score_table
from tests.unit.probes.conftest import synthetic_texts
from tests.unit.probes.test_pipeline import make_spec, patched  # noqa: F401  (fixture)


@pytest.fixture
def bundle(patched, tmp_path):  # noqa: F811
    spec = make_spec(
        tmp_path,
        experts=[
            {"name": "col", "kind": "column", "params": {"path": str(tmp_path / "col.parquet")}}
        ],
    )
    result = build_score_table(spec)
    path = result.save_monitor(tmp_path / "monitor")
    rows = pd.concat(
        [  # the texts the patched datasets produced (see the `patched` fixture)
            pd.DataFrame(
                {
                    "id": [f"{n}/{i:05d}" for i in range(k)],
                    "text": synthetic_texts(k, seed=len(n))[0],
                }
            )
            for n, k in (("toxigen", 120), ("pyrit_harm", 80))
        ]
    )
    return path.parent, result.frame.merge(rows, on="id")


def test_monitor_scores_texts_exactly_as_the_table(bundle):
    directory, frame = bundle
    m = read_manifest(directory)
    assert m.format == "ctd.monitor/1" and m.layers == [1, 2, 3] and set(m.dv_probes) == {"col"}
    assert not any(p.suffix in (".pkl", ".pickle") for p in directory.iterdir())
    monitor = TextMonitor(directory)
    p, d = monitor.score_texts(frame["text"].tolist())
    pool = frame["split"].to_numpy() != "train"  # train rows may be out-of-fold in the table
    np.testing.assert_allclose(p[pool], frame["probe_prob"].to_numpy()[pool], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d, frame["dv_score__col"].to_numpy(), rtol=1e-6, atol=1e-9)
    assert monitor.score_texts([]) == (pytest.approx(np.zeros(0)), pytest.approx(np.zeros(0)))


def test_bad_bundles_are_input_errors(bundle, tmp_path):
    directory, _ = bundle
    with pytest.raises(CTDInputError, match="no DV probe for expert 'nope'"):
        TextMonitor(directory, expert="nope")
    with pytest.raises(CTDInputError, match="no monitor bundle here"):
        read_manifest(tmp_path / "empty")
    raw = json.loads((directory / MANIFEST).read_text())
    raw["pooling"] = "max"
    (directory / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(CTDInputError, match=r"monitor\.json: invalid monitor manifest: pooling"):
        read_manifest(directory)


def test_gateway_decides_on_texts_with_the_monitor(bundle, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from serve.app import create_app
    from serve.config import GatewayConfig, Token
    from serve.gateway import Gateway
    from tests.unit.serve.gateway_fixtures import TOKEN, write_certificate

    directory, frame = bundle
    monitor = TextMonitor(directory)
    cert = write_certificate(
        tmp_path / "certificate.json", threshold=float(np.median(frame["dv_score__col"]))
    )
    gateway = Gateway(
        GatewayConfig(certificate=cert, db=tmp_path / "log.db", scores_only=False), scorer=monitor
    )
    with TestClient(create_app(gateway, Token(TOKEN))) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        texts = frame["text"].tolist()[:6]
        p, d = monitor.score_texts(texts)
        for i, text in enumerate(texts):
            r = client.post("/v1/decide", json={"text": text, "request_id": f"t{i}"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["delegated"] == bool(d[i] > body["threshold"])
            if not body["delegated"]:
                assert body["probability"] == pytest.approx(p[i])
