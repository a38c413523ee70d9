"""The rows of a spec's ``probes.datasets``: one frame ``id, text, label, group``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctd_stats.errors import CTDInputError
from probes.spec import ProbesSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_rows"]


def load_rows(spec: ProbesSpec) -> pd.DataFrame:
    """The spec's datasets as one frame ``id, text, label, group`` (ids prefixed by dataset)."""
    import pandas as pd

    from probes.assets import load_dataset, subsample

    frames = []
    for entry in spec.datasets:
        df = load_dataset(entry.name, seed=spec.seed)
        if entry.groups is not None:
            unknown = set(entry.groups) - set(df["group"])
            if unknown:
                raise CTDInputError(
                    f"probes.datasets[{entry.name}].groups: unknown group(s) {sorted(unknown)}"
                )
            df = df[df["group"].isin(entry.groups)]
        if entry.limit is not None:
            df = subsample(df, entry.limit, spec.seed)
        frames.append(df)
    rows = pd.concat(frames, ignore_index=True)
    if rows["id"].duplicated().any():
        raise CTDInputError("probes.datasets: duplicate row ids")
    return rows
