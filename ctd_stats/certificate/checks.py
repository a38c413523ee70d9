"""Reading a certificate back and checking it: is τ what the recorded counts, p-values and budget give?

:func:`load_certificate` parses the JSON, checks the schema version, the integrity seal
(:mod:`ctd_stats.certificate.seal`) and the internal consistency below, and on request the spec and
table hashes. :func:`check_certificate` runs the consistency check on an object.


The digest (:mod:`ctd_stats.certificate.seal`) says whether a file changed; this check says
whether its numbers agree with each other, so an edit survives neither a naive editor nor one who
recomputes a plain digest but not the statistics. For each result it recomputes, from the integer
counts recorded per tested threshold (``ht_count`` of ``n_test`` rows with d > τ), the budget
p-value with the recorded p-value kind and budget, and re-runs the family-wise procedure on the
recorded p-values; then it checks that τ is the threshold the method picks among the rejected ones.
The recorded ``groups`` declaration must agree with the results' method (``clusters`` exactly when
every result was certified with clusters).

Cost: O(L) per result for L tested thresholds (vectorised).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ctd_stats.certificate.model import SCHEMA_VERSION, BudgetCertificate, Certificate
from ctd_stats.certificate.seal import deployment_key, verify
from ctd_stats.errors import CTDInputError
from ctd_stats.stats.fwer import FixedSequence, procedure_by_id
from ctd_stats.stats.pvalues import PVALUE_KINDS, pvalue_function
from ctd_stats.stats.randomized import draw_u, randomized_pvalue
from ctd_stats.table.read import file_sha256

#: Relative tolerance between a recorded and a recomputed p-value (JSON keeps floats exactly; this
#: only absorbs last-digit differences between numerical libraries).
PVALUE_RTOL = 1e-9


def _budget_pvalues(r: BudgetCertificate) -> np.ndarray | None:
    if r.pvalue_kind == "binomial_randomized":
        if r.randomization is None or draw_u(r.randomization.seed) != r.randomization.u:
            return None  # reported as an unknown or inconsistent kind below
        counts = np.array([t.ht_count for t in r.tested], dtype=np.int64)
        return randomized_pvalue(counts, r.n_test, r.budget, r.randomization.u)
    if r.pvalue_kind.endswith("_cluster"):
        from ctd_stats.stats.cluster import CLUSTER_PVALUES, cluster_pvalue

        base = r.pvalue_kind.removesuffix("_cluster")
        sums = [t.cluster_sum for t in r.tested]
        if base not in CLUSTER_PVALUES or r.n_clusters is None or any(x is None for x in sums):
            return None
        return cluster_pvalue(
            np.asarray(sums, dtype=np.float64), r.n_clusters, r.budget, r.n_test, base
        )
    kind = r.pvalue_kind.split("+")[0]
    if kind not in PVALUE_KINDS:
        return None
    counts = np.array([t.ht_count for t in r.tested], dtype=np.int64)
    return pvalue_function(kind)(counts, r.n_test, r.budget)


def _procedure_problem(
    r: BudgetCertificate, pvalues: np.ndarray, rejected: np.ndarray
) -> str | None:
    """Re-run the recorded procedure (looked up by its id) on the recorded p-values."""
    try:
        proc = procedure_by_id(r.procedure)
    except CTDInputError as exc:
        return str(exc)
    return proc.recheck(pvalues, rejected, r.delta)


def result_problems(r: BudgetCertificate) -> list[str]:
    """Every inconsistency of one result, as short sentences (empty when consistent)."""
    where = f"result (expert={r.expert!r}, budget={r.budget:g})"
    out: list[str] = []
    if not (0 < r.budget < 1 and 0 < r.delta < 1):
        out.append(f"{where}: budget and delta must lie in (0, 1)")
        return out
    if r.tested_scope == "fixed_sequence_boundary" and (
        r.procedure != FixedSequence.id or r.error_level is not None or len(r.tested) > 2
    ):
        out.append(
            f"{where}: a boundary-only test record needs a budget fixed-sequence chain (≤ 2 entries)"
        )
        return out
    rejected = np.array([t.rejected for t in r.tested], dtype=bool)
    recorded = np.array([t.pvalue for t in r.tested], dtype=np.float64)
    thresholds = np.array([t.threshold for t in r.tested], dtype=np.float64)
    counts = np.array([t.ht_count for t in r.tested], dtype=np.int64)
    if r.tested:
        if r.n_test < 1 or (counts < 0).any() or (counts > r.n_test).any():
            out.append(f"{where}: counts must lie in [0, n_test = {r.n_test}]")
            return out
        rates = np.array([t.ht_rate for t in r.tested])
        if not np.allclose(rates, counts / r.n_test, rtol=0, atol=1e-12):
            out.append(f"{where}: recorded rates disagree with the recorded counts")
        p_budget = _budget_pvalues(r)
        if p_budget is None:
            out.append(
                f"{where}: unknown p-value kind {r.pvalue_kind!r}, or a randomised result whose U is "
                "not the one its seed gives"
            )
        elif r.error_level is None:
            if not np.allclose(recorded, p_budget, rtol=PVALUE_RTOL, atol=1e-300):
                i = int(
                    np.flatnonzero(~np.isclose(recorded, p_budget, rtol=PVALUE_RTOL, atol=1e-300))[
                        0
                    ]
                )
                out.append(
                    f"{where}: tested threshold #{i} records p-value {recorded[i]:.6g}, but its "
                    f"count {counts[i]} of {r.n_test} gives {p_budget[i]:.6g} at budget {r.budget:g}"
                )
        elif (recorded < p_budget * (1 - PVALUE_RTOL)).any():
            out.append(f"{where}: a joint p-value is below its budget p-value (impossible)")
        if (rejected & ~(recorded <= r.delta)).any():
            out.append(
                f"{where}: a threshold is marked certified with p-value > delta = {r.delta:g}"
            )
        problem = _procedure_problem(r, recorded, rejected)
        if problem is not None:
            out.append(f"{where}: {problem}")
    out.extend(_split_problems(r, where))
    out.extend(_cluster_problems(r, where))
    out.extend(_choice_problems(r, where, thresholds, rejected))
    return out


def _cluster_problems(r: BudgetCertificate, where: str) -> list[str]:
    """A cluster certificate's sums must move with its row counts (descending τ).

    S(τ) = Σ_j F_j(τ) grows by at least 1 / (largest cluster) whenever a row crosses τ, and only
    then; and 0 ≤ S ≤ min(K, m) with K the row count (each delegated row adds at most 1).
    """
    if not r.pvalue_kind.endswith("_cluster") or not r.tested:
        return []
    if r.method != "budget_only_cluster" or r.n_clusters is None:
        return [f"{where}: a cluster p-value needs method budget_only_cluster and n_clusters"]
    sums = np.array([math.nan if t.cluster_sum is None else t.cluster_sum for t in r.tested])
    counts = np.array([t.ht_count for t in r.tested], dtype=np.float64)
    order = np.argsort(-np.array([t.threshold for t in r.tested]), kind="stable")
    ds, dk = np.diff(sums[order]), np.diff(counts[order])
    slack = 1e-9 * max(1.0, float(np.nanmax(sums, initial=0.0)))
    if (
        np.isnan(sums).any()
        or (sums < 0).any()
        or (sums > np.minimum(counts, r.n_clusters) + slack).any()
        or ((dk > 0) != (ds > 0)).any()
    ):
        return [f"{where}: the recorded cluster sums disagree with the recorded row counts"]
    return []


def _split_problems(r: BudgetCertificate, where: str) -> list[str]:
    """Rules of the recorded calibration split (``split`` absent: older certificate, nothing to check).

    ``none`` means the front was found on the very rows the test used, so every tested threshold's
    opt rate must equal its ht rate; there is no error guarantee; and the tested family, in
    descending τ, must be a Pareto front (rates up, in-sample errors strictly down).
    """
    if r.split is None:
        return []
    if r.method != "ctd_pareto":
        return [
            f"{where}: split = {r.split!r} is recorded, but only Pareto calibration has a split"
        ]
    if r.split != "none":
        return []
    if r.error_level is not None:
        return [
            f"{where}: split = 'none' certifies the budget only, but an error level is recorded"
        ]
    if not r.tested:
        return []
    opt_rates = np.array([math.nan if t.opt_rate is None else t.opt_rate for t in r.tested])
    ht_rates = np.array([t.ht_count for t in r.tested], dtype=np.float64) / max(r.n_test, 1)
    if not np.allclose(opt_rates, ht_rates, rtol=0, atol=1e-12):
        return [
            f"{where}: split = 'none', but the opt rates differ from the rates on the test rows"
        ]
    errors = np.array([math.nan if t.opt_error is None else t.opt_error for t in r.tested])
    thresholds = np.array([t.threshold for t in r.tested], dtype=np.float64)
    order = np.argsort(-thresholds, kind="stable")
    if (np.diff(opt_rates[order]) <= 0).any() or not (np.diff(errors[order]) < 0).all():
        return [f"{where}: split = 'none', but the tested thresholds are not a Pareto front"]
    return []


def _choice_problems(
    r: BudgetCertificate, where: str, thresholds: np.ndarray, rejected: np.ndarray
) -> list[str]:
    tau = float(r.threshold)
    if not rejected.any():
        if r.certified or tau != math.inf:
            return [f"{where}: no tested threshold was rejected, so τ must be inf (never delegate)"]
        return []
    if not r.certified:
        return [f"{where}: thresholds were certified but the result says it is not"]
    cand = thresholds[rejected]
    if r.method == "budget_only":
        if tau != float(cand.min()):
            return [
                f"{where}: τ = {tau:.6g} is not the smallest certified threshold {cand.min():.6g}"
            ]
        return []
    errors = np.array(
        [math.inf if t.opt_error is None else t.opt_error for t in r.tested], dtype=np.float64
    )[rejected]
    hit = np.flatnonzero(cand == tau)
    if hit.size == 0:
        return [f"{where}: τ = {tau:.6g} is not among the certified thresholds"]
    if errors[hit[0]] > errors.min():
        return [f"{where}: τ = {tau:.6g} is not the certified threshold with the lowest opt error"]
    return []


def _groups_problems(cert: Certificate) -> list[str]:
    """The recorded ``groups`` declaration must match how the results were certified.

    ``clusters`` is written exactly when ``calibration.cluster`` is set, and then every result is
    certified with clusters as the sampling unit (``budget_only_cluster``); ``strata`` and
    ``unknown`` certify rows (the spec refuses ``strata`` next to ``cluster``). ``groups`` absent:
    an older certificate, nothing to check.
    """
    if cert.groups is None:
        return []
    for r in cert.results:
        clustered = r.method == "budget_only_cluster"
        if clustered != (cert.groups == "clusters"):
            how = "with clusters as the sampling unit" if clustered else "row by row"
            return [
                f"result (expert={r.expert!r}, budget={r.budget:g}): groups = "
                f"{cert.groups!r} is recorded, but the result was certified {how}"
            ]
    return []


def certificate_problems(cert: Certificate) -> list[str]:
    """Every inconsistency in ``cert`` (empty when all results are consistent)."""
    out: list[str] = []
    for r in cert.results:
        out.extend(result_problems(r))
    out.extend(_groups_problems(cert))
    return out


def check_certificate(cert: Certificate, where: str = "certificate") -> Certificate:
    """Raise :class:`CTDInputError` naming ``where`` if ``cert`` is inconsistent; else return it."""
    problems = certificate_problems(cert)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CTDInputError(
            f"{where}: inconsistent certificate: {problems[0]}{more}; refusing to use it"
        )
    return cert


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def load_certificate(
    path: str | os.PathLike[str],
    *,
    spec_path: str | os.PathLike[str] | None = None,
    data_path: str | os.PathLike[str] | None = None,
) -> Certificate:
    """Read a certificate and check it.

    Parameters
    ----------
    path
        The ``certificate.json`` file.
    spec_path, data_path
        If given, the spec and score table must have the sha256 recorded in the certificate.

    Raises
    ------
    CTDInputError
        Missing or unreadable file, invalid JSON, an unknown schema version, a field that fails
        validation, content that does not match its integrity digest or HMAC signature (see
        :mod:`ctd_stats.certificate.seal`), internally inconsistent numbers (τ not what the
        recorded counts, p-values and budget give; see :mod:`ctd_stats.certificate.checks`), or a
        spec/table hash mismatch; the message names the file.
    """
    p = Path(path)
    from ctd_stats.input_files import CERTIFICATE, read_capped_bytes

    if not p.exists():
        raise CTDInputError(f"{p}: certificate not found")
    try:
        text = read_capped_bytes(p, CERTIFICATE).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CTDInputError(f"{p}: cannot read the certificate ({exc})") from None
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise CTDInputError(f"{p}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except ValueError as exc:
        raise CTDInputError(f"{p}: invalid JSON: {exc}") from None
    except RecursionError:
        raise CTDInputError(
            f"{p}: invalid JSON: nested too deeply (not a ctd certificate)"
        ) from None
    if not isinstance(raw, dict):
        raise CTDInputError(f"{p}: expected a JSON object (a ctd certificate)")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CTDInputError(
            f"{p}: schema_version is {version!r}, expected {SCHEMA_VERSION!r}"
            + (
                " (not a ctd certificate?)"
                if version is None
                else " (made by an older ctd, without counts and integrity digest: recalibrate)"
                if version == "ctd.certificate/1"
                else " (made by another ctd version)"
            )
        )
    try:
        cert = Certificate.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(x) for x in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise CTDInputError(f"{p}: invalid certificate: {loc}: {first['msg']}{more}") from None
    verify(raw, cert.integrity, deployment_key(), str(p))  # over the file's own content
    check_certificate(cert, str(p))
    for what, given, recorded in (
        ("spec", spec_path, cert.spec_sha256),
        ("score table", data_path, cert.data_sha256),
    ):
        if given is None:
            continue
        if not Path(given).is_file():
            raise CTDInputError(f"{given}: {what} not found (needed to check the certificate {p})")
        actual = file_sha256(given)
        if recorded is None:
            raise CTDInputError(
                f"{p}: the certificate records no {what} hash to check {given} against"
            )
        if actual != recorded:
            raise CTDInputError(
                f"{p}: {what} {given} has sha256 {actual[:12]}…, but the certificate was made from "
                f"{recorded[:12]}… (the {what} changed since calibration)"
            )
    return cert
