"""The offline strong expert: a larger packaged model plus its own trained safety probe.

No packaged guard model is good enough (see the offline-assets notes), but a linear probe on a
1.5B-parameter model's hidden states is: it beats a zero-shot judge on the same model and costs less.
:class:`ProbeExpert` follows the :class:`probes.experts.Expert` protocol once fitted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from probes.activations import ActivationExtractor, Pooling
from probes.experts.base import ExpertCost, ExpertError, check_texts
from probes.linear import SafetyProbe

__all__ = ["ProbeExpert"]


class ProbeExpert:
    """Expert = registered model + activations + :class:`~probes.linear.SafetyProbe`.

    Parameters
    ----------
    model : str
        Registry name (see :data:`probes.assets.MODELS`), e.g. ``"qwen2.5-coder-1.5b"``.
    name : str
        Expert name.
    layers : sequence of int, optional
        Candidate layers (default: the model's registered ones); the probe picks one by inner CV.
    pooling, max_length, batch_size :
        As in :class:`probes.activations.ActivationExtractor`.
    c : float
        Inverse L2 penalty of the probe.
    cache : path, optional
        Cache root for the dequantized model and the activations.
    extractor : ActivationExtractor, optional
        Use this extractor instead of loading ``model`` (tests, or to share a loaded model).
    seed : int
        Seed of the probe's inner CV.

    Notes
    -----
    ``cost.seconds_per_call`` is the measured extraction time per text (read back from the
    activation cache for cached texts) plus the probe's own time, averaged over scored texts.
    """

    def __init__(
        self,
        model: str,
        *,
        name: str = "probe_expert",
        layers: Sequence[int] | None = None,
        pooling: Pooling = "last",
        max_length: int = 256,
        batch_size: int = 8,
        c: float = 0.05,
        cache: str | os.PathLike[str] | None = None,
        extractor: ActivationExtractor | None = None,
        seed: int = 0,
        progress: bool | None = None,
    ) -> None:
        from probes.assets import cache_dir, model_spec

        self.model_name = model
        self.name = name
        self._extractor = extractor
        self._spec = model_spec(model) if extractor is None else None
        if layers is None:
            if self._spec is None:
                raise ValueError("layers: required when an extractor is given")
            layers = self._spec.default_layers
        self.layers = [int(x) for x in layers]
        self.pooling: Pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.cache = cache_dir(cache)
        self.progress = progress
        self.probe = SafetyProbe(c=c, seed=seed)
        self._fitted = False
        self._seconds = 0.0
        self._tokens = 0.0
        self._calls = 0

    @property
    def extractor(self) -> ActivationExtractor:
        """The activation extractor (loads the model on first use)."""
        if self._extractor is None:
            from probes.assets import load_model

            loaded = load_model(self.model_name, cache=self.cache)
            self._extractor = ActivationExtractor.from_loaded(
                loaded,
                max_length=self.max_length,
                batch_size=self.batch_size,
                cache_dir=self.cache,
                progress=self.progress,
            )
        return self._extractor

    def activations(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """Activations of ``texts`` (cached) and their extraction stats."""
        return self.extractor.extract(texts, self.layers, self.pooling)

    def fit(self, texts: Sequence[str], labels: ArrayLike) -> ProbeExpert:
        """Train the expert's probe on labelled texts (unsafe = 1)."""
        items = check_texts(texts)
        x, _ = self.activations(items)
        self.probe.fit(x, np.asarray(labels), self.layers)
        self._fitted = True
        return self

    def cross_fit(
        self,
        texts: Sequence[str],
        labels: ArrayLike,
        *,
        folds: int = 5,
        seed: int = 0,
        strata: ArrayLike | None = None,
    ) -> NDArray[np.float64]:
        """Out-of-fold P(unsafe) of labelled (training) texts; the fitted probe is left unchanged.

        Each text is scored by a probe (same settings as the expert's own) fitted on the other
        ``folds - 1`` folds only (see :func:`probes.linear.out_of_fold_proba`), so the values are
        honest where :meth:`score` after :meth:`fit` on the same texts would be optimistic. Not
        counted in :attr:`cost` (no expert call is made at deployment for these).
        """
        from probes.linear import out_of_fold_proba

        items = check_texts(texts)
        x, _ = self.activations(items)
        return out_of_fold_proba(
            x,
            np.asarray(labels),
            self.layers,
            folds=folds,
            seed=seed,
            strata=strata,
            c=self.probe.c,
            inner_folds=self.probe.folds,
            device=self.probe.device,
        )

    def score(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """P(unsafe) per text.

        Raises
        ------
        ExpertError
            If the expert is not fitted, or extraction fails.
        """
        if not self._fitted:
            raise ExpertError(f"expert {self.name!r}: not fitted; call fit(texts, labels) first")
        items = check_texts(texts)
        if not items:
            return np.empty(0, dtype=np.float64)
        try:
            x, stats = self.activations(items)
        except (RuntimeError, OSError) as exc:
            raise ExpertError(f"expert {self.name!r}: extraction failed: {exc}") from exc
        t0 = time.perf_counter()
        probs = self.probe.predict_proba(x).astype(np.float64)
        probe_seconds = time.perf_counter() - t0
        self._seconds += float(stats.seconds.sum()) + probe_seconds
        self._tokens += float(stats.tokens.sum())
        self._calls += len(items)
        if probs.shape != (len(items),) or not np.isfinite(probs).all():
            raise ExpertError(f"expert {self.name!r}: invalid probabilities")
        return probs

    @property
    def cost(self) -> ExpertCost:
        """Measured cost per scored text (extraction + probe)."""
        if self._calls == 0:
            return ExpertCost(seconds_per_call=0.0, tokens_per_call=None, calls=0)
        return ExpertCost(
            seconds_per_call=self._seconds / self._calls,
            tokens_per_call=self._tokens / self._calls,
            calls=self._calls,
        )

    def __repr__(self) -> str:
        return f"ProbeExpert({self.name!r}, model={self.model_name!r}, fitted={self._fitted})"
