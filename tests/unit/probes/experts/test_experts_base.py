"""Tests of probes.experts.base: the cost model and the text checks."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from probes.experts import (
    ExpertCost,
    check_texts,
)


def test_expert_cost_model():
    c = ExpertCost(seconds_per_call=0.5, tokens_per_call=None, calls=3)
    with pytest.raises(ValidationError):
        c.calls = 4  # frozen
    with pytest.raises(ValidationError):
        ExpertCost(seconds_per_call=-1.0, calls=0)
    assert c.to_metadata("judge") == {
        "seconds_per_call": 0.5,
        "tokens_per_call": None,
        "description": "judge",
    }


def test_check_texts():
    assert check_texts(("a", "b")) == ["a", "b"]
    assert check_texts(np.array(["a", "b"])) == ["a", "b"]
    with pytest.raises(ValueError, match=r"texts\[2\] is empty"):
        check_texts(["a", "b", ""])
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        check_texts([3])


def test_package_reexports_the_submodules():
    """``from probes.experts import ...`` gives the classes of the submodules (one definition each)."""
    import probes.experts as pkg
    from probes.experts import base, column, http, judge

    assert pkg.Expert is base.Expert and pkg.ExpertError is base.ExpertError
    assert pkg.PrecomputedColumnExpert is column.PrecomputedColumnExpert
    assert pkg.PromptedJudgeExpert is judge.PromptedJudgeExpert
    assert pkg.DEFAULT_JUDGE_PROMPT is judge.DEFAULT_JUDGE_PROMPT
    assert pkg.HTTPExpert is http.HTTPExpert
    assert all(hasattr(pkg, name) for name in pkg.__all__)
