"""Declared row roles: which rows train the safety probe, the experts, the DV probes, and which form the pool.

A spec's ``probes.roles`` block replaces the two-fraction split (``train_fraction`` /
``dev_fraction``) when the user wants to *declare* how the data are used, as the paper and the demo do:

``probe_train``
    Trains the safety probe only. Drawn from the groups the spec names, which is how a **shift** is
    declared: a probe trained on templated prompts and deployed on a stream that also holds sources
    it never saw. Split ``train`` in the table.
``expert_train``
    Trains the experts that learn (a probe on another model, a judge's Platt scaling); disjoint from
    ``probe_train``. Split ``train`` in the table.
``dev``
    Trains the DV probes. Split ``dev``.
``pool``
    The calibration/evaluation pool (split ``""``): enters no fit at all, which keeps the
    calibration guarantee of ``ctd`` valid (the pool is exchangeable with deployment inputs).

Everything except ``probe_train`` is the **stream**. Inside each (group, label) stratum of the
stream, a seeded random order assigns the first ``expert_train`` share of the rows to
``expert_train``, the next ``dev`` share to ``dev``, the rest to ``pool``.

The plan also fixes a **build order** for the stream (used by resumable, sharded extraction): the
first ``pilot_per_group`` rows of each group in round-robin, then the rest interleaved by their
fractional position in their group, so any prefix of a build is a stratified subset.

The plan is a pure function of the rows and the seed (one ``numpy.random.default_rng(seed)``
consumed in a documented order), so a resumed build, a partial build and a full build agree on every
row's role. Cost: O(n log n) (pandas sorts and group-bys; no Python loop over rows).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ctd_stats.errors import CTDInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ROLE_SPLIT", "ProbeTrainDraw", "RolesSpec", "plan_roles"]

#: The score table's ``split`` of each role.
ROLE_SPLIT: dict[str, str] = {
    "probe_train": "train",
    "expert_train": "train",
    "dev": "dev",
    "pool": "",
}


class ProbeTrainDraw(BaseModel):
    """``rows`` safety-probe training rows drawn from ``groups``, stratified by (group, label)."""

    model_config = ConfigDict(extra="forbid")

    groups: list[str] = Field(min_length=1, description="groups (sources) to draw from")
    rows: int = Field(gt=0, description="rows drawn (all of them if the groups hold fewer)")


class RolesSpec(BaseModel):
    """The ``probes.roles`` block: declared roles of the rows (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, description="seed of every draw of the plan")
    probe_train: list[ProbeTrainDraw] = Field(
        min_length=1,
        description="the safety probe's training rows, draw by draw (the declared shift: the probe "
        "sees only these groups)",
    )
    stream_rows: int | None = Field(
        default=None,
        gt=0,
        description="subsample `stream_fill` (stratified by label) so that the stream has this many rows",
    )
    stream_fill: str | None = Field(
        default=None, description="the group subsampled to reach `stream_rows`"
    )
    expert_train: float = Field(
        ge=0, lt=1, description="share of each (group, label) stratum of the stream for the experts"
    )
    dev: float = Field(
        gt=0,
        lt=1,
        description="share of each (group, label) stratum of the stream for the DV probes",
    )
    pilot_per_group: int = Field(
        default=100, ge=0, description="rows per group first in the build order"
    )
    pool_limit: int | None = Field(
        default=None,
        gt=0,
        description="keep only the first `pool_limit` pool rows of each group in build order (a "
        "partial build: roles, and so every fit, are unchanged; only fewer pool rows are scored)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> RolesSpec:
        if self.expert_train + self.dev >= 1:
            raise ValueError("roles: expert_train + dev must be < 1 (the rest is the pool)")
        if (self.stream_rows is None) != (self.stream_fill is None):
            raise ValueError("roles: give both stream_rows and stream_fill, or neither")
        return self


def _draw_strata(
    frame: pd.DataFrame, n: int, rng: np.random.Generator, by: list[str]
) -> np.ndarray:
    """Index labels of ``n`` rows of ``frame``: per stratum (sorted), ``round(share * n)`` by a permutation."""
    if n >= len(frame):
        return frame.index.to_numpy()
    take: list[np.ndarray] = []
    for _, sub in frame.groupby(by, sort=True):
        k = round(len(sub) / len(frame) * n)
        take.append(rng.permutation(sub.index.to_numpy())[:k])
    return np.sort(np.concatenate(take)) if take else np.array([], dtype=np.int64)


def plan_roles(rows: pd.DataFrame, spec: RolesSpec) -> pd.DataFrame:
    """Every row's role and build position.

    Parameters
    ----------
    rows : pandas.DataFrame
        ``text, label, group`` (unsafe = 1), in load order; duplicate texts are dropped (first kept).
    spec : RolesSpec

    Returns
    -------
    pandas.DataFrame
        ``id, text, label, group, hash, role, pilot, order`` sorted by ``(order, id)``; ``order`` is -1
        for ``probe_train`` rows, else the 0-based build position; ``id`` is ``<group>/<first 12 hex digits of sha256(text)>`` (content-addressed). Rows of
        ``stream_fill`` left out by the subsample, and pool rows beyond ``pool_limit``, are absent.

    Raises
    ------
    CTDInputError
        A named group is absent, or a role ends up empty or single-class.
    """
    rng = np.random.default_rng(spec.seed)
    df = rows[["text", "label", "group"]].copy()
    df["label"] = df["label"].astype(np.int8)
    df["group"] = df["group"].astype(str)
    df = df[df["text"].str.strip().str.len() > 0]
    df["hash"] = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in df["text"]]
    df = df.drop_duplicates("hash", keep="first").reset_index(drop=True)
    known = set(df["group"])
    named = [g for d in spec.probe_train for g in d.groups] + (
        [spec.stream_fill] if spec.stream_fill else []
    )
    unknown = sorted(set(named) - known)
    if unknown:
        raise CTDInputError(f"probes.roles: unknown group(s) {unknown}; groups: {sorted(known)}")
    df["role"] = "stream"
    for draw in spec.probe_train:
        cand = df[(df["role"] == "stream") & df["group"].isin(draw.groups)]
        df.loc[_draw_strata(cand, draw.rows, rng, ["group", "label"]), "role"] = "probe_train"
    if spec.stream_fill is not None and spec.stream_rows is not None:
        stream = df[df["role"] == "stream"]
        fill = stream[stream["group"] == spec.stream_fill]
        keep = _draw_strata(
            fill, max(0, spec.stream_rows - (len(stream) - len(fill))), rng, ["label"]
        )
        df = df.drop(index=fill.index[~fill.index.isin(keep)]).reset_index(drop=True)

    df["pilot"] = False
    df["frac"] = np.nan
    is_stream = (df["role"] == "stream").to_numpy()
    groups = list(dict.fromkeys(df.loc[is_stream, "group"]))
    cut1, cut2 = spec.expert_train, spec.expert_train + spec.dev
    for g in groups:
        in_g = is_stream & (df["group"] == g).to_numpy()
        perm = rng.permutation(df.index[in_g].to_numpy())
        n = len(perm)
        df.loc[perm[: min(spec.pilot_per_group, n)], "pilot"] = True
        df.loc[perm, "frac"] = (np.arange(n) + 0.5) / max(n, 1)
        for lab in (0, 1):
            sidx = rng.permutation(df.index[in_g & (df["label"] == lab).to_numpy()].to_numpy())
            if sidx.size == 0:
                continue
            r = (np.arange(sidx.size) + 0.5) / sidx.size
            df.loc[sidx, "role"] = np.where(
                r < cut1, "expert_train", np.where(r < cut2, "dev", "pool")
            )
    s = df[df["role"] != "probe_train"].copy()
    gpos = s["group"].map({g: i for i, g in enumerate(groups)})
    pilot_rank = s.groupby("group")["frac"].rank(method="first")
    s["_k0"] = (~s["pilot"]).astype(int)
    s["_k1"] = np.where(s["pilot"], pilot_rank, s["frac"])
    s["_k2"] = gpos
    s = s.sort_values(["_k0", "_k1", "_k2"], kind="stable")
    df["order"] = -1
    df.loc[s.index, "order"] = np.arange(len(s))
    df["id"] = [f"{g}/{h[:12]}" for g, h in zip(df["group"], df["hash"], strict=True)]
    out = df[["id", "text", "label", "group", "hash", "role", "pilot", "order"]]
    out = out.sort_values(["order", "id"], kind="stable").reset_index(drop=True)
    if spec.pool_limit is not None:
        pool = out["role"] == "pool"
        rank = out[pool].groupby("group").cumcount()
        out = out.drop(index=rank.index[rank.to_numpy() >= spec.pool_limit]).reset_index(drop=True)
    for role in ("probe_train", "dev"):
        y = out.loc[out["role"] == role, "label"]
        if len(y) < 8 or y.nunique() < 2:
            raise CTDInputError(
                f"probes.roles: the {role} rows are {len(y)} with {y.nunique()} class(es); "
                "need at least 8 rows of both classes"
            )
    return out
