from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from probes.spec import ProbesSpec

ROOT = Path(__file__).resolve().parents[2]


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
        ({"datasets": [{"name": "toxigen"}], "train_fraction": 0.6, "dev_fraction": 0.5}, "must be < 1"),
        ({"datasets": [{"name": "toxigen"}, {"name": "toxigen"}]}, "unique"),
        ({"datasets": [{"name": "toxigen"}], "experts": [{"name": "a", "kind": "probe", "params": {}}]}, "needs params: model"),
        ({"datasets": [{"name": "toxigen"}], "experts": [{"name": "a", "kind": "judge", "params": {"model": "m"}}, {"name": "a", "kind": "judge", "params": {"model": "m"}}]}, "unique"),
        ({"datasets": [{"name": "toxigen"}], "experts": [{"name": "bad name", "kind": "column", "params": {"path": "x"}}]}, "pattern"),
        ({"datasets": [{"name": "toxigen", "limit": 0}]}, "greater than 0"),
    ],
)
def test_invalid(data, match):
    with pytest.raises(ValidationError, match=match):
        ProbesSpec.model_validate(data)


def test_demo_full_spec_validates_through_the_core():
    from ctd_stats.spec import load_spec

    spec = load_spec(ROOT / "specs" / "demo-full.yaml")
    ps = spec.probes_spec
    assert isinstance(ps, ProbesSpec)
    assert {e.name: e.kind for e in ps.experts} == {"strong": "probe", "weak": "judge"}
    assert {d.name for d in ps.datasets} >= {"harmbench_requests", "wildguard_adversarial", "toxigen", "pyrit_harm"}
