"""Detection delay of the anytime-valid budget monitor, per mixing prior (docs/audit.md table).

For budget b = 0.1 and alpha = 0.05, streams of i.i.d. decisions at true rates r = 1.2b … 3b; the
delay is the number of decisions until the first alarm (median and 90th percentile over 100 streams;
"> T" when fewer than half the streams alarm within T). Priors: the default, and
:func:`ctd_stats.audit.monitor.detection_prior` tuned to rho = 1.2, 1.5, 2. Also the false-alarm
frequency at r = b over the same horizon (1,000 streams; must stay ≤ alpha whatever the prior).

Run: ``python benchmarks/monitor_delay.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import numpy as np

from ctd_stats.audit.monitor import MixtureMartingale, default_prior, detection_prior

B, ALPHA, STREAMS, T = 0.1, 0.05, 100, 40_000
RATES = (1.0, 1.2, 1.5, 2.0, 3.0)


def delays(prior, rate: float, seed: int, streams: int = STREAMS) -> np.ndarray:
    """Decisions until the first alarm of each of ``streams`` seeded streams (inf: none within T)."""
    mart = MixtureMartingale(B, ALPHA, prior)
    rng = np.random.default_rng(seed)
    t = np.arange(1, T + 1)
    out = np.full(streams, np.inf)
    for i in range(streams):
        k = np.cumsum(rng.random(T) < rate * B)
        j = mart.first_alarm(t, k)
        if j >= 0:
            out[i] = j + 1
    return out


def _fmt(x: float) -> str:
    return f"> {T:,}" if not np.isfinite(x) else f"{x:,.0f}"


def main() -> None:
    priors = {"default": default_prior(B)} | {f"rho={r:g}": detection_prior(B, r) for r in (1.2, 1.5, 2.0)}
    print(f"| prior | false alarms at r = b (≤ {ALPHA}) | " + " | ".join(f"r = {r:g}b" for r in RATES[1:]) + " |")
    print("|---|---|" + "---|" * (len(RATES) - 1))
    for name, prior in priors.items():
        cells = []
        for r in RATES:
            d = delays(prior, r, seed=int(r * 100), streams=1000 if r == 1.0 else STREAMS)
            if r == 1.0:
                cells.append(f"{np.isfinite(d).mean():.2f}")
                continue
            med, p90 = np.percentile(d, [50, 90])
            cells.append(f"{_fmt(med)} ({_fmt(p90)})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
