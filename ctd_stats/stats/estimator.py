"""A scikit-learn-style estimator around the calibration: ``CTDCalibrator().fit(scores).predict(new)``.

For people used to MAPIE's risk controllers and scikit-learn's estimator protocol: the constructor
only stores its parameters (``get_params``/``set_params``, so ``sklearn.base.clone`` and grid
searches work without scikit-learn being a dependency), :meth:`CTDCalibrator.fit` certifies a
threshold on the calibration rows, the result is in ``certificate_`` (and ``threshold_``), and
:meth:`CTDCalibrator.predict` gives the delegation decision for new inputs.

The guarantee is exactly that of the function ``fit`` calls, nothing more:

* ``method="budget_only"`` (:func:`ctd_stats.calibrate_budget`): with probability ≥ 1 − ``delta``
  over the calibration scores, the long-run delegation rate P(d(X) > ``threshold_``) is at most
  ``budget``, when calibration and deployment inputs are i.i.d. draws from one distribution.
* ``method="pareto"`` (:func:`ctd_stats.calibrate_cascade`, CTD proper): the same budget guarantee,
  plus the cascade-error guarantee at ``error_level`` when one is set (both with probability
  ≥ 1 − ``delta``), under the same i.i.d. assumption.

If nothing can be certified, ``threshold_`` is +inf and :meth:`predict` never delegates (fail
closed); ``is_certified_`` says so.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.errors import CTDInputError


class CTDCalibrator:
    """Certify a delegation threshold on calibration DV scores; predict delegation for new inputs.

    Parameters
    ----------
    budget : float in (0, 1)
        Largest long-run fraction of inputs sent to the expert.
    delta : float in (0, 1)
        Allowed probability (over the calibration data) that the budget is exceeded.
    method : {"budget_only", "pareto"}
        ``budget_only``: Learn-then-Test on the scores alone (no labels). ``pareto``: CTD's Pareto
        testing, which needs ``y`` and both models' probabilities in :meth:`fit`.
    procedure : {"fixed_sequence", "bonferroni", "holm"}
        Family-wise error procedure (fixed-sequence is the most powerful for these nested tests).
    pvalue : {"binomial", "hoeffding", "bentkus", "hb"}
        p-value of the budget test (exact binomial from integer counts by default).
    error_level : float in (0, 1) or None
        ``pareto`` only: also certify the cascade error at this level (joint guarantee).
    opt_fraction, seed, split
        ``pareto`` only: see :func:`ctd_stats.calibrate_cascade`.

    Attributes
    ----------
    certificate_ : Calibration or CascadeCalibration
        The immutable calibration result (every tested threshold and p-value; ``to_dict()``).
    threshold_ : float
        The certified τ̂ (delegate iff d(x) > τ̂); +inf when nothing was certified.
    is_certified_ : bool
        Whether a finite threshold was certified.
    n_features_in_ : int
        Always 1 (the DV score).
    """

    def __init__(
        self,
        budget: float = 0.3,
        delta: float = 0.1,
        *,
        method: Literal["budget_only", "pareto"] = "budget_only",
        procedure: str = "fixed_sequence",
        pvalue: str = "binomial",
        error_level: float | None = None,
        opt_fraction: float = 0.3,
        seed: int = 0,
        split: str = "opt_ht",
    ) -> None:
        self.budget = budget
        self.delta = delta
        self.method = method
        self.procedure = procedure
        self.pvalue = pvalue
        self.error_level = error_level
        self.opt_fraction = opt_fraction
        self.seed = seed
        self.split = split

    # -------------------------------------------------------------- the estimator protocol
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters (scikit-learn protocol; ``deep`` has nothing to recurse into)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> CTDCalibrator:
        """Set constructor parameters; an unknown name is a ``ValueError`` naming the valid ones."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for CTDCalibrator; valid parameters: {', '.join(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        shown = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults.get(k)]
        return f"CTDCalibrator({', '.join(shown)})"

    # -------------------------------------------------------------------------- fit / predict
    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike | None = None,
        *,
        probe_prob: ArrayLike | None = None,
        expert_prob: ArrayLike | None = None,
    ) -> CTDCalibrator:
        """Certify the threshold on calibration rows.

        Parameters
        ----------
        X : array_like, shape (n,) or (n, 1)
            DV scores of the calibration rows (rows that trained no model).
        y : array_like of 0/1, optional
            Labels (unsafe = 1); required by ``method="pareto"``, ignored otherwise.
        probe_prob, expert_prob : array_like, optional
            P(unsafe) of the probe and of the expert per row; ``method="pareto"`` only.

        Returns
        -------
        CTDCalibrator
            ``self``, with ``certificate_``, ``threshold_``, ``is_certified_`` set.
        """
        from ctd_stats.stats.ltt import calibrate_budget
        from ctd_stats.stats.pareto import CascadeData, calibrate_cascade

        d = _scores(X)
        result: Any
        if self.method == "budget_only":
            extra = [
                n
                for n, v in (("y", y), ("probe_prob", probe_prob), ("expert_prob", expert_prob))
                if v is not None
            ]
            if extra or self.error_level is not None:
                what = ", ".join(extra + (["error_level"] if self.error_level is not None else []))
                raise CTDInputError(
                    f"CTDCalibrator(method='budget_only') uses the scores only; {what} would be "
                    "ignored: drop it or use method='pareto'"
                )
            result = calibrate_budget(
                d, self.budget, self.delta, procedure=self.procedure, pvalue=self.pvalue
            )
        elif self.method == "pareto":
            if y is None or probe_prob is None or expert_prob is None:
                raise CTDInputError(
                    "CTDCalibrator(method='pareto').fit needs y, probe_prob and expert_prob "
                    "(labels and both models' P(unsafe) on the calibration rows)"
                )
            data = CascadeData.from_probabilities(d, y, probe_prob, expert_prob)
            result = calibrate_cascade(
                data,
                budget=self.budget,
                delta=self.delta,
                opt_fraction=self.opt_fraction,
                seed=self.seed,
                error_level=self.error_level,
                procedure=self.procedure,
                pvalue=self.pvalue,
                split=self.split,
            )
        else:
            raise CTDInputError(f"method: expected 'budget_only' or 'pareto', got {self.method!r}")
        self.certificate_ = result
        self.threshold_ = float(result.threshold)
        self.is_certified_ = bool(np.isfinite(self.threshold_))
        self.n_features_in_ = 1
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise CTDInputError("this CTDCalibrator is not fitted yet: call fit(scores) first")

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """d(x) − τ̂ per input: positive means delegate (−inf everywhere when nothing was certified)."""
        self._check_fitted()
        return _scores(X) - self.threshold_

    def predict(self, X: ArrayLike) -> NDArray[np.bool_]:
        """The delegation decision per input: True iff d(x) > τ̂ (never, when not certified)."""
        self._check_fitted()
        return _scores(X) > self.threshold_


def _scores(X: ArrayLike) -> NDArray[np.float64]:
    """DV scores from shape (n,) or (n, 1), finite."""
    a = np.asarray(X, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise CTDInputError(f"expected DV scores of shape (n,) or (n, 1), got shape {a.shape}")
    if a.size and not np.all(np.isfinite(a)):
        i = int(np.flatnonzero(~np.isfinite(a))[0])
        raise CTDInputError(f"DV scores must be finite; row {i} is {a[i]!r}")
    return a
