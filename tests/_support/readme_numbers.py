"""The README's demo controls table, rendered from ``study.json`` of ``ctd run specs/demo.yaml``.

The README holds the rendered text between ``<!-- demo-controls:start -->`` and
``<!-- demo-controls:end -->``; ``tests/e2e/test_demo.py`` renders it from the study output
and requires the README to hold exactly that, so no README number is typed by hand.
"""

from __future__ import annotations

from typing import Any

START, END = "<!-- demo-controls:start -->", "<!-- demo-controls:end -->"
HEAD_START, HEAD_END = "<!-- demo-headline:start -->", "<!-- demo-headline:end -->"
BUDGET = 0.3


def _s(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{0.0 if round(x, 3) == 0 else x:+.3f}".replace("-", "−")


def _iv(row: dict[str, Any] | None) -> str:
    if row is None or row.get("mean") is None:
        return "not run"
    lo, hi = row["ci95"]
    return f"{_s(row['mean'])} [{_s(lo)}, {_s(hi)}]"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _weakest_group(logo: dict[str, Any]) -> str:
    """The group whose removal leaves the smallest Δ, with that Δ and its interval."""
    name, row = min(logo["groups"].items(), key=lambda kv: kv[1]["delta"]["mean"])
    return f"{name}: {_iv(row['delta'])}"


def render(study: dict[str, Any]) -> str:
    """The Markdown table (one column per expert) at budget 0.3."""
    names = list(study["controls"])
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, fn: Any) -> None:
        cells = []
        for n in names:
            c = study["controls"][n]
            j = min(range(len(c["budgets"])), key=lambda i: abs(c["budgets"][i] - BUDGET))
            try:
                cells.append(fn(c, j))
            except (KeyError, TypeError):
                cells.append("not run")
        rows.append((label, cells))

    add("CTD − calibrated uncertainty (200 splits)", lambda c, j: _iv(c["headline"]["delta"][j]))
    add("… interval from a pool bootstrap", lambda c, j: _iv(c["intervals"]["pool_bootstrap"][j]))
    add(
        "… interval with DV refits on dev resamples",
        lambda c, j: _iv(c["intervals"]["dv_refits"][j]),
    )
    add("… under the paper's opt/ht split", lambda c, j: _iv(c["protocols"]["opt_ht"][j]))
    add(
        "… on the probe's 3 training sources",
        lambda c, j: _iv(c["by_group"]["probe-trained sources"]["delta"][j]),
    )
    add(
        "… on the 4 sources it never saw",
        lambda c, j: _iv(c["by_group"]["unseen sources"]["delta"][j]),
    )
    add(
        "… without the one source it rests on most (leave one out, 100 splits)",
        lambda c, j: _weakest_group(c["leave_one_group_out"]),
    )
    add("CTD AUROC", lambda c, j: f"{c['headline']['ctd'][j]:.3f}")
    add(
        "refit probe alone (no expert) AUROC",
        lambda c, j: f"{c['labels_to_probe']['auroc']['refit_probe'][j]:.3f}",
    )
    add(
        "refit probe + uncertainty delegation − CTD",
        lambda c, j: _iv(c["labels_to_probe"]["refit_unc_minus_ctd"][j]),
    )
    add(
        "refit probe + CTD − refit probe + uncertainty",
        lambda c, j: _iv(c["labels_to_probe"]["refit_ctd_minus_refit_unc"][j]),
    )
    add(
        "route-by-group (learned on dev): share of CTD's gain",
        lambda c, j: _pct(c["route_by_group"]["fraction_of_ctd_gain"][j]),
    )
    add(
        "share of the oracle − uncertainty gap CTD closes",
        lambda c, j: _pct(c["oracle"]["fraction_of_gap_closed_by_ctd"][j]),
    )
    add(
        "no shift (probe trained on every source): CTD − uncertainty",
        lambda c, j: _iv(c["no_shift"]["delta"][j]),
    )
    add("no shift: oracle − uncertainty", lambda c, j: _iv(c["no_shift"]["oracle_minus_unc"][j]))
    add(
        "null world (labels from the probe's own score): Δ",
        lambda c, j: _iv(c["null"]["null_delta"][j]),
    )
    add(
        "… p-value of the observed Δ (1 / (1 + draws) is the smallest possible)",
        lambda c, j: f"{c['null']['p_value'][j]:.3f} ({c['null']['draws']} draws)",
    )
    head = "| at budget 0.3 | " + " | ".join(names) + " |"
    sep = "|---|" + "---|" * len(names)
    body = ["| " + label + " | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join([head, sep, *body])


def render_headline(study: dict[str, Any]) -> str:
    """The headline table: per expert, probe and expert alone, and CTD against calibrated
    uncertainty at budgets 0.1 and 0.3 (means and paired intervals over the splits)."""
    lines = [
        "| expert | probe alone | expert alone | budget | CTD AUROC | calibrated uncertainty | Δ [95% interval over splits] |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in study["experts"]:
        for b in (0.1, 0.3):
            j = min(range(len(e["budgets"])), key=lambda i: abs(e["budgets"][i] - b))
            lines.append(
                f"| {e['expert']} | {e['probe_only']['auroc']:.3f} | {e['expert_only']['auroc']:.3f} | {b:g} | "
                f"{e['auroc']['ctd'][j]:.3f} | {e['auroc']['unc_calibrated'][j]:.3f} | "
                f"{_iv(e['auroc_delta']['ctd'][j])} |"
            )
    return "\n".join(lines)


def readme_block(text: str, start: str = START, end: str = END) -> str:
    """The README text between the markers (stripped)."""
    a, b = text.index(start) + len(start), text.index(end)
    return text[a:b].strip()
