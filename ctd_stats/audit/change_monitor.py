r"""An anytime-valid detector of a delegation-rate *change* whose delay does not grow with history.

Why not the cumulative test
---------------------------
:class:`~ctd_stats.audit.monitor.BudgetMonitor` tests "rate <= budget" on all decisions since it
started. After a long compliant history the mean moves slowly: a jump from 0.1 to 0.4 against a
budget of 0.2 took 27,039 decisions to alarm after 50,000 good ones, and about 510,000 after
1,000,000 (issue 19). A live gateway needs a detector whose evidence can start *at the change*.

The detector: a mixture over start times
----------------------------------------
Decisions :math:`X_1, X_2, \dots \in \{0, 1\}` (1 = delegated), filtration
:math:`\mathcal F_t = \sigma(X_1, \dots, X_t)`. **Assumption (the null)**: at every step the
conditional delegation probability is within budget,
:math:`E[X_t \mid \mathcal F_{t-1}] \le b` (i.i.d. Bernoulli(p) with :math:`p \le b` is the special
case the certificate speaks of; drifting rates that stay within budget are covered too).

Start times lie on a grid of spacing ``W`` (``spacing``): :math:`s_j = jW`, :math:`j = 0, 1, \dots`.
Start :math:`j` runs the truncated-Beta mixture test supermartingale of
:class:`~ctd_stats.audit.monitor.MixtureMartingale` on the decisions after :math:`s_j`:

.. math:: M^j_t = \int_b^1 \prod_{s_j < i \le t} \Big(1 + \lambda_q (X_i - b)\Big)\,\pi(dq),
          \qquad \lambda_q = \frac{q - b}{b(1-b)},

with :math:`M^j_t = 1` for :math:`t \le s_j`. Weights
:math:`w_j = 1/\log_2(j+2) - 1/\log_2(j+3)` are positive and telescope: :math:`\sum_{j \ge 0} w_j = 1`
exactly, and :math:`\sum_{j \ge J} w_j = 1/\log_2(J+2)`. To bound the work, only some starts are
kept: start :math:`j` is *active* at time :math:`t` iff its age :math:`a = \lfloor t/W \rfloor - j`
is below ``recent`` or :math:`j` is a multiple of :math:`g(a)`, the largest power of two
:math:`\le \max(1, a/4)` (about four starts per octave of age). :math:`A_{j,t} \in \{0, 1\}` is
deterministic and non-increasing in :math:`t` (:math:`g` is a non-decreasing power of two, so once
:math:`j` is not a multiple it never is again). The monitor's evidence is

.. math:: E_t = \sum_{j \ge 0} w_j\, A_{j,t}\, M^j_t
          \;=\; \sum_{j:\, s_j \le t,\ A_{j,t}=1} w_j M^j_t \;+\; \frac{1}{\log_2(\lfloor t/W\rfloor + 3)},

and it alarms at the first :math:`t` with :math:`E_t \ge 1/\alpha`.

**Theorem (false alarms).** Under the null, :math:`P(\exists t \ge 1: E_t \ge 1/\alpha) \le \alpha`,
for any horizon, however often the state is read.

*Proof.* Fix :math:`q \in (b, 1)`. One factor has
:math:`E[1 + \lambda_q(X_t - b) \mid \mathcal F_{t-1}] = 1 + \lambda_q(E[X_t\mid\mathcal F_{t-1}] - b)
\le 1` since :math:`\lambda_q > 0`, and it is :math:`\ge 1 - \lambda_q b = (1-q)/(1-b) > 0`. So the
product over :math:`s_j < i \le t` is a nonnegative supermartingale (constant 1 up to :math:`s_j`),
and so is its :math:`\pi`-mixture :math:`M^j_t` (Tonelli: the conditional expectation of the
integral is the integral of the conditional expectations). Because :math:`A_{j,t+1} \le A_{j,t}`
are constants, :math:`E[E_{t+1} \mid \mathcal F_t] = \sum_j w_j A_{j,t+1} E[M^j_{t+1} \mid
\mathcal F_t] \le \sum_j w_j A_{j,t} M^j_t = E_t`: :math:`E_t` is a nonnegative supermartingale with
:math:`E_0 = \sum_j w_j = 1`. Ville's inequality gives :math:`P(\sup_t E_t \ge 1/\alpha) \le \alpha`.
:math:`\square`

(Dropping starts can only lower :math:`E_t`, so pruning costs power, never validity; likewise
checking fewer times. ``tests/audit/test_change_monitor.py`` checks the false-alarm frequency at
:math:`p = b` against ``alpha`` with an exact binomial tolerance.)

**Delay.** After a change at time :math:`c` to a rate :math:`p' > b`, the first start at or after
:math:`c`, :math:`j^* = \lceil c/W \rceil`, sees only post-change decisions and stays active for at
least ``recent``·W decisions; :math:`E_t \ge w_{j^*} M^{j^*}_t`, so the alarm comes after at most
about :math:`(c \bmod W) + [\log(1/\alpha) + \log(1/w_{j^*}) + O(\log t)]/\mathrm{KL}(p'\|b)`
decisions past the change, with :math:`\log(1/w_j) = \log j + 2\log\log j + O(1)`. The delay grows
*logarithmically* with the history :math:`c` (the price of a false-alarm bound over an unbounded
horizon: the level is spent over infinitely many start times), where the cumulative test's grows
linearly. ``benchmarks/monitor_change_delay.py`` tabulates it.

Work per update is :math:`O(\text{active starts} \times \text{block})` with about
``recent + 4 log2(t / (W·recent))`` active starts; the exact :math:`M^j_t` (incomplete beta
function) is computed only where a cheap upper bound on :math:`E_t` (sum of the per-start bounds of
:meth:`MixtureMartingale.log_evidence_bound`) reaches the threshold. The alarm time is exact and
does not depend on how the stream is cut into updates. The state (counts and the active starts) is
a few hundred numbers: :meth:`to_state` / :meth:`from_state` checkpoint it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.audit.monitor import (
    BetaPrior,
    DecisionCounts,
    MixtureMartingale,
    as_decisions,
    check_budget_alpha,
    confidence_sequence,
    default_prior,
)

#: Updates are processed in slices of at most this many decisions (bounded memory).
_SLICE = 4096
#: Relative slack when comparing the cheap upper bound of E_t with the threshold.
_BOUND_SLACK = 1e-9
#: Starts per octave of age kept beyond the ``recent`` ones (see the module docstring).
_PER_OCTAVE = 4
STATE_VERSION = "ctd.change-monitor/1"


def log_weight(j: NDArray[np.int64]) -> NDArray[np.float64]:
    """``log w_j`` with ``w_j = 1/log2(j+2) - 1/log2(j+3)`` (they sum to 1 over j >= 0)."""
    jj = np.asarray(j, dtype=np.float64)
    return np.asarray(np.log(1.0 / np.log2(jj + 2.0) - 1.0 / np.log2(jj + 3.0)), dtype=np.float64)


def future_mass(started: NDArray[np.int64] | int) -> NDArray[np.float64]:
    """``sum_{j >= J} w_j = 1/log2(J+2)`` for ``J`` starts begun."""
    return np.asarray(1.0 / np.log2(np.asarray(started, dtype=np.float64) + 2.0), dtype=np.float64)


def active(j: NDArray[np.int64], age: NDArray[np.int64], recent: int) -> NDArray[np.bool_]:
    """Whether start ``j`` is kept at ``age`` (in starts): ``age < recent`` or ``j`` is a multiple
    of the largest power of two ``<= max(1, age / 4)``; non-increasing in ``age``."""
    a = np.asarray(age, dtype=np.int64)
    q = np.maximum(a // _PER_OCTAVE, 1)
    g = np.left_shift(np.int64(1), np.floor(np.log2(q.astype(np.float64))).astype(np.int64))
    return np.asarray((a < recent) | (np.asarray(j) % g == 0), dtype=np.bool_)


class ChangeMonitor(DecisionCounts):
    """Online, anytime-valid detector of "the delegation rate is now above the budget".

    Guarantee: if every decision's conditional delegation probability given the past is at most
    ``budget`` (e.g. i.i.d. Bernoulli(p), p <= budget), ``P(alarm is ever raised) <= alpha`` at any
    horizon (module docstring, with proof). The alarm delay after a change grows only
    logarithmically with the length of the compliant history before it.

    Parameters
    ----------
    budget : float
        Certified delegation budget ``b`` in (0, 1).
    alpha : float
        Level: the alarm threshold is ``E_t >= 1/alpha``.
    spacing : int
        ``W``, decisions between two start times (default 64).
    recent : int
        The most recent starts all kept (default 32: the last ``W·recent`` decisions at full
        resolution); older ones are thinned to about four per octave of age.
    prior : BetaPrior, optional
        Mixing prior of each start's test (truncated to (b, 1)); default
        :func:`~ctd_stats.audit.monitor.default_prior`.

    Attributes after an alarm stay fixed (the test has stopped); counts keep growing.
    """

    def __init__(
        self,
        budget: float,
        alpha: float = 0.05,
        *,
        spacing: int = 64,
        recent: int = 32,
        prior: BetaPrior | None = None,
    ) -> None:
        check_budget_alpha(budget, alpha)
        if spacing < 1 or recent < 1:
            raise ValueError(f"spacing and recent must be >= 1, got {spacing}, {recent}")
        self.budget = float(budget)
        self.alpha = float(alpha)
        self.spacing = int(spacing)
        self.recent = int(recent)
        self.martingale = MixtureMartingale(self.budget, self.alpha, prior or default_prior(budget))
        self._log_thr = math.log(1.0 / self.alpha)
        self._n = 0
        self._k = 0
        # Active starts: index j (start time j·W) and the delegation count at the start.
        self._j = np.zeros(1, dtype=np.int64)
        self._kj = np.zeros(1, dtype=np.int64)
        self._alarm_at: int | None = None
        self._alarm_log_e: float | None = None

    # ------------------------------------------------------------------ updates
    def update(self, delegated: ArrayLike | bool) -> ChangeMonitor:
        """Add decisions in time order (one or an array; vectorised, no per-row Python loop)."""
        x = as_decisions(delegated)
        for a in range(0, x.size, _SLICE):
            self._update_block(np.cumsum(x[a : a + _SLICE], dtype=np.int64))
        return self

    def _update_block(self, cum: NDArray[np.int64]) -> None:
        m = int(cum.size)
        if m == 0:
            return
        n0, k0, w = self._n, self._k, self.spacing
        self._n, self._k = n0 + m, k0 + int(cum[-1])
        if self._alarm_at is not None:
            return
        # Starts begun inside the block: s_j in (n0, n0 + m].
        new_j = np.arange(n0 // w + 1, (n0 + m) // w + 1, dtype=np.int64)
        new_k = k0 + cum[new_j * w - n0 - 1]
        j = np.concatenate([self._j, new_j])
        kj = np.concatenate([self._kj, new_k])
        cols = self._flagged_columns(n0, k0, cum, j, kj)
        if cols.size:
            self._scan(n0, k0, cum, j, kj, cols)
        end_age = (n0 + m) // w - j
        keep = active(j, end_age, self.recent)
        self._j, self._kj = j[keep], kj[keep]

    def _flagged_columns(
        self,
        n0: int,
        k0: int,
        cum: NDArray[np.int64],
        j: NDArray[np.int64],
        kj: NDArray[np.int64],
    ) -> NDArray[np.int64]:
        """Block columns (0-based) in segments where ``E_t`` might reach ``1/alpha``.

        The block is cut at the start grid, so no start begins inside a segment. Within a segment
        every start's ``M^j_t`` is at most its value at (all the segment's delegations, the
        non-delegations at the segment's first time): ``M`` grows with delegations and shrinks with
        non-delegations for every ``q > b``. Activity and the future mass only decrease in ``t``.
        """
        m, w = int(cum.size), self.spacing
        edges = np.unique(
            np.concatenate([[n0, n0 + m], np.arange((n0 // w + 1) * w, n0 + m, w, dtype=np.int64)])
        )
        first, last = edges[:-1] + 1, edges[1:]
        k_first = k0 + cum[first - n0 - 1]
        k_last = k0 + cum[last - n0 - 1]
        start = j[:, None] * w
        started = start <= edges[:-1][None, :]
        big_k = np.maximum(k_last[None, :] - kj[:, None], 0)
        z = np.maximum((first[None, :] - start) - (k_first[None, :] - kj[:, None]), 0)
        bound = self.martingale.log_evidence_bound(big_k + z, big_k)
        live = started & active(j[:, None], (first // w)[None, :] - j[:, None], self.recent)
        terms = np.where(live, np.exp(np.minimum(bound + log_weight(j)[:, None], 700.0)), 0.0)
        screen = terms.sum(axis=0) + future_mass(first // w + 1)
        hot = np.flatnonzero(screen >= (1.0 - _BOUND_SLACK) / self.alpha)
        if hot.size == 0:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(
            [np.arange(first[h] - n0 - 1, last[h] - n0, dtype=np.int64) for h in hot]
        )

    def _scan(
        self,
        n0: int,
        k0: int,
        cum: NDArray[np.int64],
        j: NDArray[np.int64],
        kj: NDArray[np.int64],
        cols: NDArray[np.int64],
    ) -> None:
        """Per-decision check of the flagged columns (cheap bound, then exact where needed)."""
        w = self.spacing
        t = n0 + 1 + cols
        k = k0 + cum[cols]
        rel_t = t[None, :] - j[:, None] * w
        rel_k = k[None, :] - kj[:, None]
        age = (t // w)[None, :] - j[:, None]
        live = (rel_t >= 0) & active(j[:, None], age, self.recent)
        logw = log_weight(j)[:, None]
        tt = np.maximum(rel_t, 0)
        kk = np.where(rel_t > 0, rel_k, 0)
        bound = np.where(tt > 0, self.martingale.log_evidence_bound(tt, kk), 0.0)
        upper = np.where(live, np.exp(np.minimum(bound + logw, 700.0)), 0.0).sum(axis=0)
        upper += future_mass(t // w + 1)
        cand = np.flatnonzero(upper >= (1.0 - _BOUND_SLACK) / self.alpha)
        for a in range(0, cand.size, 256):  # in time order; stop at the first alarm
            c = cand[a : a + 256]
            ex = self._exact(tt[:, c], kk[:, c], live[:, c], logw, t[c] // w + 1)
            hit = np.flatnonzero(ex >= self._log_thr)
            if hit.size:
                self._alarm_at = int(t[c[hit[0]]]) - 1
                self._alarm_log_e = float(ex[hit[0]])
                return

    def _exact(
        self,
        tt: NDArray[np.int64],
        kk: NDArray[np.int64],
        live: NDArray[np.bool_],
        logw: NDArray[np.float64],
        started: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """``log E_t`` exactly at the given columns."""
        le = np.where(tt > 0, self.martingale.log_evidence(tt, kk), 0.0)
        terms = np.where(live, le + logw, -np.inf)
        terms = np.concatenate([terms, np.log(future_mass(started))[None, :]], axis=0)
        top = terms.max(axis=0)
        return np.asarray(top + np.log(np.exp(terms - top).sum(axis=0)), dtype=np.float64)

    # ------------------------------------------------------------------ state
    # n, k: DecisionCounts
    @property
    def active_starts(self) -> int:
        """Start times currently kept."""
        return int(self._j.size)

    @property
    def alarm(self) -> bool:
        """True once ``E_t`` has reached ``1/alpha`` (it stays True: the test has stopped)."""
        return self._alarm_at is not None

    @property
    def alarm_at(self) -> int | None:
        """0-based index of the decision at which the alarm was raised (None before)."""
        return self._alarm_at

    @property
    def log_evidence(self) -> float:
        """``log E_n`` now (at the alarm once alarmed)."""
        if self._alarm_log_e is not None:
            return self._alarm_log_e
        n, w = self._n, self.spacing
        rel_t = n - self._j * w
        rel_k = self._k - self._kj
        live = rel_t >= 0
        out = self._exact(
            np.maximum(rel_t, 0)[:, None],
            np.where(rel_t > 0, rel_k, 0)[:, None],
            live[:, None],
            log_weight(self._j)[:, None],
            np.array([n // w + 1]),
        )
        return float(out[0])

    @property
    def evidence(self) -> float:
        """``E_n``, an e-value for the null (``1/alpha`` is the alarm threshold)."""
        return math.exp(min(self.log_evidence, 700.0))

    @property
    def interval(self) -> tuple[float, float]:
        """(1 - alpha) confidence sequence for the rate since the monitor started (i.i.d. case)."""
        lo, hi = confidence_sequence(self._n, self._k, self.alpha, self.martingale.prior)
        return float(lo[0]), float(hi[0])

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot; :meth:`from_state` restores an identical monitor."""
        pr = self.martingale.prior
        return {
            "version": STATE_VERSION,
            "budget": self.budget,
            "alpha": self.alpha,
            "spacing": self.spacing,
            "recent": self.recent,
            "prior": [pr.a, pr.c],
            "n": self._n,
            "k": self._k,
            "starts": self._j.tolist(),
            "start_counts": self._kj.tolist(),
            "alarm_at": self._alarm_at,
            "alarm_log_evidence": self._alarm_log_e,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ChangeMonitor:
        """The monitor saved by :meth:`to_state`.

        Raises
        ------
        ValueError
            Not a state of this version, or inconsistent.
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"not a {STATE_VERSION} state: {state.get('version')!r}")
        a, c = state["prior"]
        m = cls(
            state["budget"],
            state["alpha"],
            spacing=state["spacing"],
            recent=state["recent"],
            prior=BetaPrior(float(a), float(c)),
        )
        m._n, m._k = int(state["n"]), int(state["k"])
        m._j = np.asarray(state["starts"], dtype=np.int64)
        m._kj = np.asarray(state["start_counts"], dtype=np.int64)
        if m._j.shape != m._kj.shape or m._j.size == 0 or not 0 <= m._k <= m._n:
            raise ValueError("inconsistent change-monitor state")
        m._alarm_at = None if state["alarm_at"] is None else int(state["alarm_at"])
        ale = state["alarm_log_evidence"]
        m._alarm_log_e = None if ale is None else float(ale)
        return m

    def __repr__(self) -> str:
        return (
            f"ChangeMonitor(budget={self.budget}, alpha={self.alpha}, n={self.n}, k={self.k}, "
            f"alarm={self.alarm}, active_starts={self.active_starts})"
        )
