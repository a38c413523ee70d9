"""Caps on the size of a run, shared by the spec models and the command line (no heavy imports).

A typo such as ``repeats: 100000000000000000000`` must be refused at ``ctd validate``, not start a
run that never ends; within the caps, ``ctd run`` and ``ctd simulate`` print their time estimate
before the long part starts.
"""

from __future__ import annotations

#: Largest ``evaluation.repeats`` / ``ctd run --repeats`` (the demo's 200 splits take seconds;
#: 100,000 take hours).
MAX_REPEATS = 100_000
#: Largest ``simulation.trials`` / ``ctd simulate --trials`` (10^7 trials of n = 1,000 take hours).
MAX_TRIALS = 10_000_000
#: An estimate at least this long (seconds) is printed before the work starts.
ANNOUNCE_AFTER_S = 10.0


def format_duration(seconds: float) -> str:
    """``42 s``, ``7.5 min``, ``3.2 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
