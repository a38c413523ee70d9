"""Engine selection; the local path never imports Ray (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ctd_stats.engines.local import LocalEngine, get_engine
from ctd_stats.errors import CTDInputError


def test_local_engine_maps_in_order() -> None:
    assert LocalEngine().map(lambda s, x: s + x, 10, [1, 2, 3]) == [11, 12, 13]
    assert get_engine(None).name == "local"


def test_engine_errors() -> None:
    with pytest.raises(CTDInputError, match="unknown engine"):
        get_engine("spark")
    with pytest.raises(CTDInputError, match="--address needs --engine ray"):
        get_engine("local", "auto")


def test_bad_address_form() -> None:
    from ctd_stats.engines.ray_engine import check_reachable

    with pytest.raises(CTDInputError, match="expected auto, HOST:PORT"):
        check_reachable("ray://nohostport")
    with pytest.raises(CTDInputError, match="cannot reach the Ray cluster"):
        check_reachable("127.0.0.1:9", timeout=1.0)


def test_local_path_imports_no_ray(tmp_path) -> None:
    code = (
        "import sys\n"
        "from ctd_stats.cli.entry import main\n"
        "assert main(['simulate', '--trials', '50', '--json']) == 0\n"
        "import pandas as pd, numpy as np\n"
        "pd.DataFrame({'ts': np.arange(50.0), 'delegated': np.arange(50) % 5 == 0}).to_parquet("
        f"r'{tmp_path}/log.parquet')\n"
        "from ctd_stats.audit.run import audit_log\n"
        f"audit_log(r'{tmp_path}', threshold=0.5, budget=0.3)\n"
        "import ctd_stats.study.runner, ctd_stats.engines.local, probes.commands\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
