"""The shipped specs whose groups are data sources declare them strata: no correlation warning.

Their pool rows were assigned to roles row by row (``probes/roles.py``) and split into opt / ht /
eval by one random permutation of rows, so sources are strata of a mixture, not sampling clusters
(the comment in ``specs/demo.yaml``). Before the declaration, ``ctd calibrate specs/demo.yaml``
warned "rows sharing a group are correlated ... design effect 32.78 over 7 groups".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_NOT_CERTIFIED, EXIT_OK
from ctd_stats.spec.cascade_spec import load_spec

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.mark.parametrize("name", ["demo", "semi-synthetic", "weak-expert"])
def test_source_specs_calibrate_without_a_correlation_warning(name, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["calibrate", str(SPECS / f"{name}.yaml"), "-o", str(out)])
    assert code in (EXIT_OK, EXIT_NOT_CERTIFIED)
    err = capsys.readouterr().err
    assert "sharing a group" not in err and "ClusterCorrelation" not in err, err
    raw = json.loads((out / "certificate.json").read_text())
    assert raw["groups"] == "strata" and "declared: groups are strata" in raw["assumption"]


@pytest.mark.parametrize("name", ["demo-full", "weak-expert-none"])
def test_other_source_specs_declare_strata(name):
    assert load_spec(SPECS / f"{name}.yaml").calibration.groups_declared == "strata"
