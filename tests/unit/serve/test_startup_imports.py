"""The gateway starts without the offline-analysis stack: no pandas, no scipy.stats at import.

Restart time counts (issue 19: ``ctd serve`` launch to ready within 2 s, also on a large log); most
of it was importing pandas and scipy.stats through the audit package, which the gateway needs only
for the log schema, the change monitor and (on ``/v1/budget``) one Clopper–Pearson interval.
Measured on the shared 2-core machine, CPU time from launch to ``/readyz`` 200: 1.73–1.85 s before,
0.71–0.82 s after.
"""

from __future__ import annotations

import subprocess
import sys


def test_serving_imports_neither_pandas_nor_scipy_stats():
    code = (
        "import sys\n"
        "import ctd_stats.cli.serve, serve.app, serve.gateway, serve.config, serve.budgetwatch\n"
        "heavy = [m for m in ('pandas', 'scipy.stats', 'pyarrow', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_audit_package_still_exports_its_names_lazily():
    import ctd_stats.audit as audit

    assert audit.audit_log.__module__ == "ctd_stats.audit.run"
    assert audit.clopper_pearson.__module__ == "ctd_stats.stats.intervals"
    assert set(audit.__all__) <= set(dir(audit))
