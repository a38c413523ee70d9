"""The resumable shard store of a model pass (probes/shards.py)."""

from __future__ import annotations

import numpy as np

from probes.shards import ShardStore, fill_store


def _runner(calls: list[list[str]]):
    def run(texts: list[str]):
        calls.append(list(texts))
        n = len(texts)
        logits = np.array([float(len(t)) for t in texts])
        feats = np.stack([np.full((1, 4), len(t), dtype=np.float32) for t in texts]) if n else None
        return logits, feats

    return run


def test_fill_resumes_and_a_complete_store_never_loads_the_model(tmp_path):
    texts = [f"text number {i}" * (1 + i % 3) for i in range(23)]
    hashes = [f"{i:064x}" for i in range(23)]
    store = ShardStore(tmp_path / "s", "m:abc|prompt=judge-v2|maxtok=8", ["last1"])
    calls: list[list[str]] = []
    shards: list[int] = []
    n = fill_store(
        store,
        texts[:10],
        hashes[:10],
        lambda: _runner(calls),
        shard_size=4,
        on_shard=lambda p, k, s: shards.append(k),
    )
    assert n == 10 and shards == [4, 4, 2] and len(store.shards()) == 3
    # resume with more texts: only the 13 new ones are computed, in order
    made: list[int] = []

    def factory():
        made.append(1)
        return _runner(calls)

    assert fill_store(store, texts, hashes, factory, shard_size=5) == 13
    assert made == [1] and calls[-1] == texts[20:23]
    got = store.load()
    assert set(got) == set(hashes)
    for t, h in zip(texts, hashes, strict=True):
        assert got[h][0] == float(len(t)) and got[h][1].shape == (1, 4)
    # complete: the factory (the model load) is never called
    assert fill_store(store, texts, hashes, lambda: (_ for _ in ()).throw(AssertionError)) == 0
    assert not list((tmp_path / "s").glob(".shard-*"))  # no temporary file left


def test_other_versions_and_missing_slots_are_never_mixed_in(tmp_path):
    a = ShardStore(tmp_path, "v1", ["last1"])
    a.write(["h1"], np.array([1.0]), np.ones((1, 1, 2)), 1.0)
    b = ShardStore(tmp_path, "v2", ["last1"])
    b.write(["h1"], np.array([2.0]), np.ones((1, 1, 2)), 3.0)
    assert a.load()["h1"][0] == 1.0 and b.load()["h1"][0] == 2.0
    assert ShardStore(tmp_path, "v1", ["last2"]).load() == {}
    assert b.seconds_per_text() == 3.0
    assert np.isnan(ShardStore(tmp_path / "none", "v1", ["last1"]).seconds_per_text())
    assert a.next_path().name == "shard-00002.npz"
