"""Control columns of a score table: the refits a reviewer asks for, stored at build time.

``ctd run`` must stay seconds, so every control that needs activations is fitted by ``ctd scores``
(a spec's ``probes.controls`` block), once, and stored as a column; the study
(:mod:`ctd_stats.study.controls`) only reads them. The convention (also in ``docs/score-table.md``,
"Control columns") is:

``probe_prob_refit``
    The same safety-probe class (:class:`probes.linear.SafetyProbe`, same penalty, layer chosen by
    its inner CV) on the same monitored-model features, refit on the ``dev`` rows' labels -- the rows
    the DV probe trains on. Cross-fitted: out of fold on dev rows (``folds`` folds, strata
    group x label), a fit on all dev rows everywhere else.
``dv_score_refit__<expert>``
    A DV probe trained on the dev rows with the target ``v = (2y - 1)(b - p_refit)`` computed from the
    out-of-fold ``probe_prob_refit`` (extras ``p_refit``, ``|p_refit - 1/2|``): CTD on top of the
    refit probe.
``dv_score_boot<k>__<expert>``, ``k = 0 .. n_boot - 1``
    The DV probe of the table (target from ``probe_prob``) refit on bootstrap resample ``k`` of the
    dev rows (seeded: child ``k`` of ``SeedSequence(seed)``), predicted on every row: intervals that
    include the randomness of the DV fit.
``probe_prob_noshift`` and ``dv_score_noshift__<expert>``
    The no-shift control: the safety probe trained on rows from every source that are disjoint from
    dev and pool (``noshift_train``; out of fold there, full fit elsewhere) and a DV probe refit on
    dev against it.

Every function here is a pure function of features, labels, masks and groups (no file access).
Cost: ``2 + n_boot`` DV fits per expert plus ``2 x (folds + 1)`` safety-probe fits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "N_BOOT",
    "boot_column",
    "control_columns",
    "crossfit_probe",
    "dv_fit_predict",
    "dv_target",
]

#: DV refits on bootstrap resamples of the dev rows stored per expert.
N_BOOT = 20


def boot_column(k: int, expert: str) -> str:
    """Column name of bootstrap DV refit ``k`` of ``expert``."""
    return f"dv_score_boot{k}__{expert}"


def dv_target(
    y: NDArray[Any], b: NDArray[np.float64], p: NDArray[np.float64]
) -> NDArray[np.float64]:
    """v = (2y − 1)(b − p): how much closer to the label the expert is than the probe."""
    return np.asarray((2.0 * np.asarray(y, dtype=np.float64) - 1.0) * (b - p), dtype=np.float64)


def crossfit_probe(
    x: Any,
    y: NDArray[Any],
    train: NDArray[np.bool_],
    strata: NDArray[Any],
    layers: Sequence[int] | None,
    *,
    folds: int = 5,
    seed: int = 0,
    c: float = 0.05,
) -> NDArray[np.float64]:
    """P(unsafe) of a :class:`~probes.linear.SafetyProbe` trained on the ``train`` rows.

    Out of fold (``folds`` folds stratified by ``strata``, seeded) on the ``train`` rows; a fit on all
    ``train`` rows scores every other row.
    """
    import torch

    from probes.linear import SafetyProbe, out_of_fold_proba

    train = np.asarray(train, dtype=bool)
    tt = torch.as_tensor(train)
    yt = np.asarray(y).astype(int)[train]
    probe = SafetyProbe(c=c, seed=seed).fit(x[tt], yt, list(layers) if layers is not None else None)
    p = np.asarray(probe.predict_proba(x), dtype=np.float64)
    p[train] = out_of_fold_proba(
        x[tt],
        yt,
        list(layers) if layers is not None else None,
        folds=folds,
        seed=seed,
        strata=np.asarray(strata)[train],
        c=c,
    )
    return p


def dv_fit_predict(
    x: Any,
    v: NDArray[np.float64],
    p: NDArray[np.float64],
    fit_rows: NDArray[np.int64],
    layers: Sequence[int] | None,
) -> NDArray[np.float64]:
    """A :class:`~probes.linear.DVProbe` (extras ``p``, ``|p − ½|``) fitted on ``fit_rows`` (row
    indices; repeats allowed, e.g. a bootstrap resample), predicted on every row."""
    import torch

    from probes.linear import DVProbe

    rows = np.asarray(fit_rows, dtype=np.int64)
    extra = np.c_[p, np.abs(p - 0.5)]
    idx = torch.as_tensor(rows)
    dvp = DVProbe().fit(
        x[idx], v[rows], list(layers) if layers is not None else None, extra=extra[rows]
    )
    return np.asarray(dvp.predict(x, extra=extra), dtype=np.float64)


def control_columns(
    x: Any,
    y: NDArray[Any],
    group: NDArray[Any],
    probe_prob: NDArray[np.float64],
    experts: Mapping[str, NDArray[np.float64]],
    *,
    dev: NDArray[np.bool_],
    noshift_train: NDArray[np.bool_] | None,
    layers: Sequence[int] | None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    folds: int = 5,
    c: float = 0.05,
    log: Any = None,
    refit: bool = True,
) -> dict[str, NDArray[np.float64]]:
    """Every control column of the convention above, keyed by column name.

    Parameters
    ----------
    x : torch.Tensor
        Monitored-model features ``[n, layers, width]`` of every row.
    y, group : arrays of length n
        Labels (0/1) and groups (sources); the strata of the cross-fitting are group x label.
    probe_prob : array
        The table's safety probe P(unsafe) (the target of the table's DV probes).
    experts : mapping
        Expert name -> its P(unsafe) on every row (finite on dev rows).
    dev : bool array
        The rows the table's DV probes train on.
    noshift_train : bool array or None
        Training rows of the no-shift probe (disjoint from dev and the pool); None: no no-shift columns.
    refit : bool
        Whether to compute the refit columns (``probe_prob_refit``, ``dv_score_refit__<expert>``).
    """
    say = log or (lambda _msg: None)
    y = np.asarray(y).astype(int)
    dev = np.asarray(dev, dtype=bool)
    strata = np.char.add(np.char.add(np.asarray(group).astype(str), "|"), y.astype(str))
    dev_rows = np.flatnonzero(dev)
    out: dict[str, NDArray[np.float64]] = {}
    if refit:
        say(f"controls: probe refit on {dev_rows.size} dev rows (cross-fitted, {folds} folds)")
        p_refit = crossfit_probe(x, y, dev, strata, layers, folds=folds, seed=seed, c=c)
        out["probe_prob_refit"] = p_refit
        for name, b in experts.items():
            out[f"dv_score_refit__{name}"] = dv_fit_predict(
                x, dv_target(y, b, p_refit), p_refit, dev_rows, layers
            )
    say(f"controls: {n_boot} bootstrap DV refits per expert")
    for k in range(n_boot):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
        rows = dev_rows[rng.integers(0, dev_rows.size, dev_rows.size)]
        for name, b in experts.items():
            out[boot_column(k, name)] = dv_fit_predict(
                x, dv_target(y, b, probe_prob), probe_prob, rows, layers
            )
    if noshift_train is not None:
        ns = np.asarray(noshift_train, dtype=bool)
        if (ns & dev).any():
            raise ValueError("noshift_train rows must be disjoint from the dev rows")
        say(
            f"controls: no-shift probe on {int(ns.sum())} rows from {len(set(np.asarray(group)[ns]))} groups"
        )
        p_ns = crossfit_probe(x, y, ns, strata, layers, folds=folds, seed=seed, c=c)
        out["probe_prob_noshift"] = p_ns
        for name, b in experts.items():
            out[f"dv_score_noshift__{name}"] = dv_fit_predict(
                x, dv_target(y, b, p_ns), p_ns, dev_rows, layers
            )
    return out
