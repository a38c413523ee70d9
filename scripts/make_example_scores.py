"""Write ``specs/data/example-scores.csv``: a small SYNTHETIC score table for the example specs.

Not real model scores: labels, probe and expert probabilities and DV scores are drawn from a simple
generative model so that the example specs in ``specs/`` run in seconds without any model. Two
experts: ``expert`` (strong; the standard columns) and ``weak`` (``expert_prob__weak``,
``dv_score__weak``). The ``split`` column is left empty, so the spec's ``splits`` assign rows.

    python scripts/make_example_scores.py
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "specs" / "data" / "example-scores.csv"


def make(n: int = 2000, seed: int = 7) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    groups = rng.choice(["requests", "jailbreaks", "toxicity"], size=n, p=[0.5, 0.3, 0.2])
    hardness = np.where(groups == "jailbreaks", 1.6, np.where(groups == "toxicity", 1.0, 0.6))
    y = rng.integers(0, 2, size=n)
    sign = 2 * y - 1

    def prob(strength: float, noise: float) -> np.ndarray:
        z = sign * strength / hardness + rng.normal(0, noise, n)
        return np.asarray(1 / (1 + np.exp(-z)))

    probe = prob(1.2, 1.2)
    strong = prob(3.0, 1.0)
    weak = prob(1.6, 1.1)
    # DV score: a noisy estimate of the expert's advantage over the probe, (2y - 1)(b - p)
    dv_strong = sign * (strong - probe) + rng.normal(0, 0.25, n)
    dv_weak = sign * (weak - probe) + rng.normal(0, 0.25, n)
    return [
        {
            "id": f"ex{i:05d}",
            "split": "",
            "group": groups[i],
            "label": int(y[i]),
            "probe_prob": round(float(probe[i]), 5),
            "expert_prob": round(float(strong[i]), 5),
            "dv_score": round(float(dv_strong[i]), 5),
            "expert_prob__weak": round(float(weak[i]), 5),
            "dv_score__weak": round(float(dv_weak[i]), 5),
        }
        for i in range(n)
    ]


def main() -> None:
    rows = make()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(buf.getvalue(), encoding="utf-8")
    print(f"wrote {TARGET} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
