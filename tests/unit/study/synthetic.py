"""Synthetic pools with known answers for the controls' tests.

Three groups. In group ``A`` (a fifth of the rows) the probe is weak and the expert nearly perfect;
in ``B`` and ``C`` the expert is a copy of the probe (v = 0 there, so delegating there changes
nothing). With ``planted=True`` the DV score knows group A (d = 1{A} + small noise): CTD sends its
budget to A and beats calibrated uncertainty. With ``planted=False`` the DV score learned the
opposite (d = −1{A} + noise): CTD spends its budget where the expert changes nothing.
"""

from __future__ import annotations

import numpy as np

from ctd_stats.study.control_inputs import ControlColumns, DevRows
from ctd_stats.study.runner import StudyInputs


def _rows(rng: np.random.Generator, n: int, hurt_half: bool = False) -> tuple[np.ndarray, ...]:
    group = rng.choice(np.array(["A", "B", "C"]), size=n, p=[0.2, 0.4, 0.4])
    y = rng.random(n) < 0.5
    signal = np.where(group == "A", 0.3, 2.0)  # the probe is weak on A, and confident there
    noise = np.where(group == "A", 3.0, 1.0) * rng.normal(size=n)
    p = 1 / (1 + np.exp(-(signal * (2 * y - 1) + noise)))
    good = (group == "A") & ((rng.random(n) < 0.5) if hurt_half else True)
    b = np.where(good, np.where(y, 0.97, 0.03), p)
    if hurt_half:  # in the other half of A the expert is confidently wrong
        b = np.where((group == "A") & ~good, np.where(y, 0.1, 0.9), b)
    return group, y, p, b, good


def pool(
    seed: int = 0, n: int = 1200, planted: bool = True, hurt_half: bool = False, **cols: object
) -> tuple[StudyInputs, ControlColumns]:
    """(study inputs of the pool, control columns with dev rows drawn the same way).

    ``hurt_half``: the expert helps on a random half of A only and hurts on the other half, and the
    DV score knows which half (so routing group A whole is worse than CTD).
    """
    rng = np.random.default_rng(seed)
    group, y, p, b, good = _rows(rng, n, hurt_half)
    d = (1.0 if planted else -1.0) * good + 0.1 * rng.normal(size=n)
    dg, dy, dp, db, _ = _rows(rng, n // 2, hurt_half)
    dev = DevRows(labels=dy, probe_prob=dp, expert_prob=db, group=dg)
    inputs = StudyInputs(
        labels=y, probe_prob=p, expert_prob=b, dv_score=d.astype(float), group=group, expert="x"
    )
    return inputs, ControlColumns(dev=dev, **cols)  # type: ignore[arg-type]
