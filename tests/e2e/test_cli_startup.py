"""`ctd --help` / `--version` import no heavy library (the speed target lives in benchmarks/)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "torch",
    "transformers",
    "pydantic",
    "fastapi",
    "ray",
)


def test_parser_and_plugins_import_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "from ctd_stats.cli.entry import help_text\n"
        "help_text()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_probes_block_is_still_validated_after_lazy_registration(tmp_path) -> None:
    from ctd_stats.cli.plugins import load_plugins
    from ctd_stats.spec.blocks import block_model
    from ctd_stats.spec.cascade_spec import load_spec

    load_plugins()
    assert block_model("probes").__name__ == "ProbesSpec"
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "data: {table: t.parquet}\nprobes: {datasets: [{name: toxigen}], model: gpt-99}\n"
    )
    import pytest

    from ctd_stats.errors import CTDInputError

    with pytest.raises(CTDInputError, match="gpt-99"):
        load_spec(spec)
