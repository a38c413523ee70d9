"""The study's verdict: one paragraph per expert, written from the controls' numbers only.

Decision rule at the headline budget (0.3, or the nearest of the grid), on paired AUROC differences
over the study's splits (:class:`~ctd_stats.study.controls.ExpertControls`):

1. CTD *does not pay* if its interval against calibrated-uncertainty delegation is not above 0.
2. Otherwise it *does not pay as deployed* if a simpler use of the same labels has a higher mean
   AUROC: the safety probe refit on the DV probe's labels (alone, or with uncertainty delegation) or
   the route-by-group rule learned on dev.
3. Otherwise CTD *pays*; the paragraph says by how much, against which alternative.

The paragraph also says where (per group) CTD helps or hurts, what the null that can fail, the
oracle gap and the no-shift control show, and whether CTD still adds value on top of the refit probe.
When the headline's interval excludes 0 but leaving one group out makes it include 0 (or puts it on
the other side of 0), it names that group ("the gain rests on <group>: without it Δ = …");
otherwise it adds nothing about that control.
Rows whose ``group`` cell is empty (or missing) form one group, named "(no group)" in the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ctd_stats.study.controls import ExpertControls, headline_index

__all__ = ["NO_GROUP", "Verdict", "expert_verdict", "group_label", "overall_verdict"]

#: How the verdict and the report name the rows whose ``group`` cell is empty (or missing): they are
#: left out, and counted, together, as one group (study.json keeps its key ``""``).
NO_GROUP = "(no group)"

#: Human names of the alternatives the verdict compares CTD with.
ALTERNATIVES: dict[str, str] = {
    "refit_probe": "the safety probe refit on the DV probe's labels (no delegation)",
    "refit_unc": "the refit probe with calibrated-uncertainty delegation",
    "route": "the route-by-group rule learned on dev",
}


def group_label(name: str) -> str:
    """A group's name as the verdict and the report print it: :data:`NO_GROUP` for ``""``."""
    return name if name else NO_GROUP


def _s(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{0.0 if round(x, 3) == 0 else x:+.3f}"


def _iv(m: float, lo: float, hi: float) -> str:
    return f"{_s(m)} [{_s(lo)}, {_s(hi)}]"


@dataclass(frozen=True)
class Verdict:
    """One expert's verdict: the paragraph, whether CTD pays, and the alternative it was held to."""

    expert: str
    budget: float
    ctd_pays: bool
    reason: str
    best_alternative: str | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "expert": self.expert,
            "budget": self.budget,
            "ctd_pays": self.ctd_pays,
            "reason": self.reason,
            "best_alternative": self.best_alternative,
            "text": self.text,
        }


def expert_verdict(c: ExpertControls, budget: float = 0.3) -> Verdict:
    """The verdict paragraph of one expert (see the module docstring)."""
    j = headline_index(c.budgets, budget)
    a = float(c.budgets[j])
    m, lo, hi = c.headline.at(j)
    ctd, unc = float(c.mean_auroc("ctd")[j]), float(c.mean_auroc("unc")[j])
    parts = [
        f"Expert '{c.expert}' at budget {a:g}: CTD AUROC {ctd:.3f} against {unc:.3f} for calibrated-uncertainty "
        f"delegation, Δ = {_iv(m, lo, hi)} over {c.repeats} splits"
    ]
    extra = []
    if c.pool_bootstrap is not None:
        extra.append(f"pool bootstrap [{_s(c.pool_bootstrap.lo[j])}, {_s(c.pool_bootstrap.hi[j])}]")
    if c.dv_refit is not None:
        extra.append(f"with DV refits [{_s(c.dv_refit.lo[j])}, {_s(c.dv_refit.hi[j])}]")
    parts[0] += (" (" + "; ".join(extra) + ")" if extra else "") + "."
    frac = c.ratio(("ctd", "unc"), ("oracle", "unc"))[j]
    parts.append(
        f"The oracle reaches {float(c.mean_auroc('oracle')[j]):.3f}; CTD closes "
        + (f"{frac:.0%}" if np.isfinite(frac) else "none (no gap)")
        + " of the oracle − uncertainty gap."
    )
    if c.by_group:
        named = {k: iv for k, iv in c.by_group.items() if np.isfinite(iv.mean[j])}
        helps = [f"{group_label(k)} {_s(iv.mean[j])}" for k, iv in named.items() if iv.lo[j] > 0]
        hurts = [f"{group_label(k)} {_s(iv.mean[j])}" for k, iv in named.items() if iv.hi[j] < 0]
        parts.append(
            "By group, CTD beats uncertainty on "
            + (", ".join(helps) if helps else "no group")
            + " and trails it on "
            + (", ".join(hurts) if hurts else "no group")
            + " (paired intervals excluding 0)."
        )
    rests = _rests_on(c, j, lo, hi)
    if rests:
        parts.append(rests)
    if c.null is not None:
        pv = c.null["p_value"][j]
        nm = c.null["null_delta"][j]
        parts.append(
            f"In the null world (labels drawn from the probe's own calibrated score, a uniformly good expert) "
            f"Δ is {_iv(nm['mean'], *nm['ci95'])}; the observed Δ "
            + ("exceeds it" if pv <= 0.05 else "does not exceed it")
            + f" (p = {pv:.3f})"
            + ("." if pv <= 0.05 else ": the probe's own score explains the gain.")
        )
    alts = {k: float(c.mean_auroc(k)[j]) for k in ALTERNATIVES if c.has(k)}
    if c.has("refit_probe"):
        rp, ru, rc = (float(c.mean_auroc(k)[j]) for k in ("refit_probe", "refit_unc", "refit_ctd"))
        on_top = c.diff("refit_ctd", "refit_unc")
        parts.append(
            f"Spending the DV probe's labels on refitting the safety probe instead gives AUROC {rp:.3f} with no "
            f"delegation and {ru:.3f} with uncertainty delegation ({_iv(*c.diff('refit_unc', 'ctd').at(j))} "
            f"against CTD); CTD on top of the refit probe reaches {rc:.3f} ({_iv(*on_top.at(j))} against the "
            "refit probe with uncertainty delegation)."
        )
    if c.route is not None:
        rf = c.ratio(("route", "unc"), ("ctd", "unc"))[j]
        parts.append(
            f"Routing whole groups by their dev delegation value ({', '.join(c.route.order) or 'none'}) "
            f"reaches {float(c.mean_auroc('route')[j]):.3f}"
            + (f", {rf:.0%} of CTD's gain." if np.isfinite(rf) else ".")
        )
    if c.has("noshift_ctd"):
        parts.append(
            f"With the safety probe trained on every source (no shift) Δ = "
            f"{_iv(*c.diff('noshift_ctd', 'noshift_unc').at(j))}."
        )
    best = max(alts, key=lambda k: alts[k]) if alts else None
    if not lo > 0:
        pays, reason = False, "no_gain_over_uncertainty"
        parts.append(
            f"CTD does not pay here: it does not beat calibrated-uncertainty delegation at budget {a:g}."
        )
    elif best is not None and alts[best] > ctd:
        pays, reason = False, "simpler_alternative_better"
        gap = c.diff(best, "ctd").at(j)
        spend = (
            " — the labels would be better spent on the probe" if best.startswith("refit") else ""
        )
        parts.append(
            f"CTD does not pay here as deployed: {ALTERNATIVES[best]} is better by {_iv(*gap)}{spend}."
        )
        if c.has("refit_ctd") and c.diff("refit_ctd", "refit_unc").lo[j] > 0:
            parts.append("CTD still adds value on top of the refit probe.")
    else:
        pays, reason = True, "pays"
        against = (
            (
                f"; against the best simpler use of the same labels ({ALTERNATIVES[best]}) "
                f"{_iv(*c.diff('ctd', best).at(j))}"
            )
            if best is not None
            else ""
        )
        parts.append(
            f"CTD pays here: {_s(m)} AUROC over calibrated-uncertainty delegation{against}."
        )
    return Verdict(c.expert, a, pays, reason, best, " ".join(parts))


def _rests_on(c: ExpertControls, j: int, lo: float, hi: float) -> str:
    """The sentence naming the groups without which the headline's interval [lo, hi] at budget
    index ``j`` would include 0 (empty if none, or if the control is not at that budget)."""
    logo = c.leave_one_out
    if logo is None or logo.budget != float(c.budgets[j]):
        return ""
    groups = logo.rests_on(lo, hi)
    if not groups:
        return ""
    said = [
        f"{group_label(g)}: without it Δ = {_iv(*logo.interval(g))} ({logo.splits} splits)"
        for g in groups
    ]
    return f"The {'gain' if lo > 0 else 'loss'} rests on " + "; it also rests on ".join(said) + "."


def overall_verdict(verdicts: list[Verdict]) -> str:
    """One line over all experts, then each expert's paragraph."""
    paying = [v.expert for v in verdicts if v.ctd_pays]
    head = (
        "CTD pays for " + ", ".join(f"'{e}'" for e in paying) + "."
        if paying
        else "CTD does not pay here for any expert."
    )
    return " ".join([head, *(v.text for v in verdicts)])
