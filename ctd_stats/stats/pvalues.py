"""Valid p-values for "the risk exceeds a level", computed from integer counts.

For a loss L ∈ {0, 1} (delegation indicator, cascade error) with risk R = E[L], and n i.i.d.
observations with integer count k = Σ L_i, each function returns a p-value for

    H0: R > ℓ   (the level is violated)   against   H1: R ≤ ℓ,

where the level ℓ (``level``) is a delegation budget or an error level. *Valid* means
super-uniform under H0: P(p ≤ u) ≤ u for every u ∈ [0, 1], for i.i.d. (or exchangeable,
conditionally i.i.d.) observations. Rejecting H0 at level δ certifies R ≤ ℓ.

All functions are vectorised over ``k`` (and broadcast over ``level``); counts must be integers —
never reconstruct them from a float mean times n. The 0.1 keyword ``alpha=`` still works, with a
DeprecationWarning (``alpha`` now names monitor and test levels only).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.errors import CTDInputError

PValueKind = Literal["binomial", "hoeffding", "bentkus", "hb"]
PVALUE_KINDS: tuple[str, ...] = ("binomial", "hoeffding", "bentkus", "hb")


def _counts(k: ArrayLike, n: int) -> NDArray[np.int64]:
    arr = np.asarray(k)
    if not np.issubdtype(arr.dtype, np.integer):
        raise CTDInputError("k must be integer counts (never a float mean times n)")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise CTDInputError(f"n must be a positive integer, got {n!r}")
    if arr.size and (arr.min() < 0 or arr.max() > n):
        raise CTDInputError(f"k must lie in [0, n] = [0, {n}]")
    return arr.astype(np.int64)


def _level(level: ArrayLike) -> NDArray[np.float64]:
    a = np.asarray(level, dtype=np.float64)
    if not np.all((a > 0) & (a < 1)):
        raise CTDInputError(
            "level (the risk level: a budget or an error level) must lie strictly between 0 and 1"
        )
    return a


F = TypeVar("F", bound=Callable[..., Any])


def _accepts_alpha(fn: F) -> F:
    """Let 0.1 callers pass the level as ``alpha=`` (deprecated)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "alpha" in kwargs:
            warnings.warn(
                f"{fn.__name__}(alpha=...) is deprecated; the keyword is level=",
                DeprecationWarning,
                stacklevel=2,
            )
            kwargs["level"] = kwargs.pop("alpha")
        return fn(*args, **kwargs)

    return cast(F, wrapper)


@_accepts_alpha
def binomial_pvalue(k: ArrayLike, n: int, level: ArrayLike) -> NDArray[np.float64]:
    """Exact binomial p-value ``P(Bin(n, ℓ) ≤ k)``.

    Valid for 0/1 losses: under H0 the count is Bin(n, R) with R > ℓ, which is stochastically
    larger than Bin(n, ℓ), so P(p ≤ u) ≤ u. This is the smallest valid p-value that is a monotone
    function of k (it is exact at R = ℓ up to discreteness).
    Edge cases: k = n gives 1; k = 0 gives (1 − ℓ)^n.
    """
    from scipy import special  # imported on use: `ctd validate` never needs it

    kk = _counts(k, n)
    a = _level(level)
    return np.asarray(np.clip(special.bdtr(kk, n, a), 0.0, 1.0), dtype=np.float64)


def _bernoulli_kl(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """KL(Bern(a) || Bern(b)) with the convention 0·log 0 = 0."""
    from scipy import special

    return np.asarray(special.rel_entr(a, b) + special.rel_entr(1.0 - a, 1.0 - b), dtype=np.float64)


@_accepts_alpha
def hoeffding_pvalue(k: ArrayLike, n: int, level: ArrayLike) -> NDArray[np.float64]:
    """Hoeffding p-value in Kullback–Leibler form, ``exp(−n · KL(min(r̂, ℓ) || ℓ))`` with r̂ = k/n.

    Valid for losses in [0, 1] (Chernoff–Hoeffding: P(r̂ ≤ t) ≤ exp(−n KL(t||R)) for t ≤ R, and
    KL(t||R) ≥ KL(t||ℓ) when t ≤ ℓ < R). Looser than the exact binomial p-value for 0/1 losses.
    """
    kk = _counts(k, n)
    a = _level(level)
    rhat = kk / n
    t = np.minimum(rhat, a)
    return np.asarray(np.clip(np.exp(-n * _bernoulli_kl(t, a)), 0.0, 1.0), dtype=np.float64)


@_accepts_alpha
def bentkus_pvalue(k: ArrayLike, n: int, level: ArrayLike) -> NDArray[np.float64]:
    """Bentkus p-value ``min(1, e · P(Bin(n, ℓ) ≤ ⌈n r̂⌉))``.

    Valid for losses in [0, 1] (Bentkus' inequality); for 0/1 losses ⌈n r̂⌉ = k exactly, so this is
    e times the binomial p-value — computed from the integer count, never from a float.
    """
    from scipy import special

    kk = _counts(k, n)
    a = _level(level)
    return np.asarray(np.minimum(1.0, np.e * special.bdtr(kk, n, a)), dtype=np.float64)


@_accepts_alpha
def hb_pvalue(k: ArrayLike, n: int, level: ArrayLike) -> NDArray[np.float64]:
    """Hoeffding–Bentkus p-value: the minimum of :func:`hoeffding_pvalue` and :func:`bentkus_pvalue`.

    Both are valid and each is built from a bound on the same tail event, so the minimum is valid.
    """
    return np.minimum(hoeffding_pvalue(k, n, level), bentkus_pvalue(k, n, level))


_PVALUES: dict[str, Callable[[ArrayLike, int, ArrayLike], NDArray[np.float64]]] = {
    "binomial": binomial_pvalue,
    "hoeffding": hoeffding_pvalue,
    "bentkus": bentkus_pvalue,
    "hb": hb_pvalue,
}


def pvalue_function(kind: str) -> Callable[[ArrayLike, int, ArrayLike], NDArray[np.float64]]:
    """Look up a count-based p-value by name (``binomial``, ``hoeffding``, ``bentkus``, ``hb``)."""
    try:
        return _PVALUES[kind]
    except KeyError:
        raise CTDInputError(
            f"pvalue must be one of {', '.join(PVALUE_KINDS)}; got {kind!r}"
        ) from None


@_accepts_alpha
def wsr_pvalue(
    losses: ArrayLike, level: float, *, delta: float = 0.1, c: float = 0.5
) -> NDArray[np.float64]:
    """One-sided betting (Waudby-Smith–Ramdas) p-value for H0: E[L] ≥ ℓ with losses in [0, 1].

    ``losses`` has shape (n,) or (n, m): m loss columns (e.g. one per threshold), observed in row
    order. The capital process is K_t = Π_{i ≤ t} (1 − λ_i (L_i − ℓ)) with predictable bets
    λ_i = min(sqrt(2 log(1/δ) / (n σ̂²_{i−1})), c / (1 − ℓ)), σ̂² a running variance estimate using
    only L_1..L_{i−1}. Under H0 (E[L_i | past] ≥ ℓ, i.i.d.), K_t is a non-negative supermartingale
    (each factor has conditional mean 1 − λ_i (E L − ℓ) ≤ 1 and is ≥ 1 − c > 0), so by Ville's
    inequality p = min(1, 1 / max_t K_t) is valid: P(p ≤ u) ≤ u. ``delta`` only tunes the bets.

    Cost O(n·m) time and memory (losses are arbitrary reals, so no count shortcut exists).
    """
    L = np.asarray(losses, dtype=np.float64)
    squeeze = L.ndim == 1
    if squeeze:
        L = L[:, None]
    if L.ndim != 2 or L.shape[0] == 0:
        raise CTDInputError("losses must be a non-empty array of shape (n,) or (n, m)")
    if not np.all(np.isfinite(L)) or L.min() < 0 or L.max() > 1:
        raise CTDInputError("losses must be finite and lie in [0, 1]")
    a = float(_level(level))
    n = L.shape[0]
    t = np.arange(1, n + 1, dtype=np.float64)[:, None]
    mu_hat = (0.5 + np.cumsum(L, axis=0)) / (t + 1)
    var_hat = (0.25 + np.cumsum((L - mu_hat) ** 2, axis=0)) / (t + 1)
    prev_var = np.vstack([np.full((1, L.shape[1]), 0.25), var_hat[:-1]])
    lam = np.minimum(np.sqrt(2.0 * np.log(1.0 / delta) / (n * prev_var)), c / (1.0 - a))
    log_k = np.cumsum(np.log1p(-lam * (L - a)), axis=0)
    p = np.minimum(1.0, np.exp(-np.max(log_k, axis=0)))
    return np.asarray(p[0] if squeeze else p, dtype=np.float64)
