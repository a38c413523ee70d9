"""Score table reading: both formats, column mapping, validation messages, split assignment."""

from __future__ import annotations

import numpy as np
import pytest

from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_BAD_INPUT, CTDInputError
from ctd_stats.table.score_table import (
    ColumnNames,
    ExpertColumnNames,
    fill_splits,
    read_score_table,
)


def _err(path, **kw) -> str:
    with pytest.raises(CTDInputError) as info:
        read_score_table(path, **kw)
    return str(info.value)


@pytest.mark.parametrize("name", ["t.parquet", "t.csv"])
def test_reads_both_formats_identically(make_table, name):
    ref = read_score_table(make_table("ref.parquet"))
    t = read_score_table(make_table(name))
    assert len(t) == 600 and t.expert_names == ["expert"]
    np.testing.assert_allclose(t.expert().dv_score, ref.expert().dv_score, rtol=1e-12)
    assert t.label is not None and set(np.unique(t.label)) <= {0.0, 1.0}
    assert (t.split == "").all() and t.sha256 is not None


def test_column_mapping(make_table):
    path = make_table("m.csv", edit=lambda f: f.rename(columns={"dv_score": "dv", "label": "y"}))
    t = read_score_table(path, columns=ColumnNames(dv_score="dv", label="y"), require_labels=True)
    assert t.label is not None and len(t) == 600


@pytest.mark.parametrize("name", ["t.parquet", "t.csv"])
def test_missing_column_names_column_and_file(make_table, name):
    path = make_table(name, edit=lambda f: f.drop(columns=["dv_score"]))
    msg = _err(path)
    assert str(path) in msg and "missing column 'dv_score'" in msg


def test_missing_label_column_for_pareto(make_table):
    path = make_table(edit=lambda f: f.drop(columns=["label"]))
    read_score_table(path)  # fine for budget-only
    assert "missing column 'label'" in _err(path, require_labels=True)


@pytest.mark.parametrize("name", ["t.parquet", "t.csv"])
def test_nan_in_dv_score_names_first_bad_row(make_table, name):
    def edit(f):
        f.loc[[7, 9], "dv_score"] = np.nan

    msg = _err(make_table(name, edit=edit))
    assert "column 'dv_score'" in msg and name in msg
    assert "NaN" in msg and "row 7 (id 'r7'" in msg and "2 bad rows" in msg
    if name.endswith(".csv"):
        assert "line 9" in msg


def test_inf_in_dv_score(make_table):
    def edit(f):
        f.loc[3, "dv_score"] = np.inf

    assert "got inf at row 3" in _err(make_table(edit=edit))


def test_labels_must_be_binary(make_table):
    def edit(f):
        f.loc[5, "label"] = 2

    msg = _err(make_table("t.csv", edit=edit))
    assert "column 'label': expected labels 0 or 1" in msg and "row 5" in msg


def test_missing_labels_allowed(make_table):
    def edit(f):
        f["label"] = f["label"].astype(float)
        f.loc[5, "label"] = np.nan

    t = read_score_table(make_table(edit=edit))
    assert t.label is not None and np.isnan(t.label[5])


def test_probability_out_of_range(make_table):
    def edit(f):
        f.loc[11, "probe_prob"] = 1.2

    msg = _err(make_table(edit=edit))
    assert "column 'probe_prob': expected probabilities in [0, 1], got 1.2 at row 11" in msg


def test_non_numeric_value(make_table):
    def edit(f):
        f["dv_score"] = f["dv_score"].astype(object)
        f.loc[4, "dv_score"] = "oops"

    msg = _err(make_table("t.csv", edit=edit))
    assert "column 'dv_score': expected numbers, got 'oops' at row 4 (line 6)" in msg


def test_unknown_split_name(make_table):
    def edit(f):
        f.loc[2, "split"] = "test"

    assert "column 'split': expected one of train, dev, opt, ht, eval or empty, got 'test'" in _err(
        make_table(edit=edit)
    )


def test_duplicate_ids(make_table):
    def edit(f):
        f.loc[1, "id"] = "r0"

    assert "duplicate id 'r0'" in _err(make_table(edit=edit))


def test_empty_table_and_missing_file(make_table, tmp_path):
    assert "no rows" in _err(make_table("e.csv", n=600, edit=lambda f: f.iloc[:0]))
    assert "score table not found" in _err(tmp_path / "nope.parquet")
    (tmp_path / "x.json").write_text("{}")
    assert "cannot tell the table format" in _err(tmp_path / "x.json")
    (tmp_path / "bad.parquet").write_text("not parquet")
    assert "not a readable Parquet file" in _err(tmp_path / "bad.parquet")


def test_multi_expert_columns(make_table):
    path = make_table(weak=True)
    t = read_score_table(
        path,
        experts={"strong": ExpertColumnNames("expert_prob", "dv_score"), "weak": None},
    )
    assert t.expert_names == ["strong", "weak"]
    assert t.expert("weak").expert_prob is not None
    with pytest.raises(CTDInputError, match="unknown expert 'x'"):
        t.expert("x")


def test_multi_expert_autodetect(make_table):
    path = make_table(weak=True, edit=lambda f: f.drop(columns=["dv_score"]))
    assert read_score_table(path).expert_names == ["weak"]


def test_fill_splits_keeps_given_and_is_seeded():
    split = np.array(["eval"] * 10 + [""] * 1000)
    fr = {"dev": 0.0, "opt": 0.2, "ht": 0.3, "eval": 0.4}
    a = fill_splits(split, fr, seed=3)
    assert (a[:10] == "eval").all()
    counts = {s: int((a[10:] == s).sum()) for s in ("opt", "ht", "eval", "pool")}
    assert counts == {"opt": 200, "ht": 300, "eval": 400, "pool": 100}
    assert (fill_splits(split, fr, seed=3) == a).all()
    assert not (fill_splits(split, fr, seed=4) == a).all()


def test_cli_validate_bad_table_exit_2(make_table, write_spec, capsys):
    def edit(f):
        f.loc[7, "dv_score"] = np.nan

    table = make_table(edit=edit)
    spec = write_spec(f"data: {{table: {table.name}}}\n")
    assert main(["validate", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert str(table) in err and "'dv_score'" in err and "row 7" in err


@pytest.mark.parametrize("name", ["t.parquet", "t.csv"])
def test_one_long_id_does_not_widen_every_row(make_table, name):
    """Ids are stored in a size that does not grow with the longest id (a fixed-width ``<U`` array
    would give each of the 2,000 rows the 40 kB of one 10,000-character id: 80 MB)."""
    long_id = "x" * 10_000

    def edit(f):
        f["id"] = f["id"].astype(object)
        f.loc[3, "id"] = f" {long_id} "  # stripped like every id

    t = read_score_table(make_table(name, n=2000, edit=edit))
    assert len(t) == 2000 and t.ids[3] == long_id and t.ids[4] == "r4"
    assert t.ids.nbytes <= 64 * len(t)


def test_ids_checked_after_stripping_and_numbers_as_ids(make_table):
    def edit(f):
        f["id"] = f["id"].astype(object)
        f.loc[8, "id"] = " r2"

    assert "duplicate id 'r2'" in _err(make_table(edit=edit))
    t = read_score_table(make_table("n.parquet", edit=lambda f: f.assign(id=range(10, 610))))
    assert t.ids[0] == "10" and t.ids[-1] == "609"
    t = read_score_table(make_table("none.parquet", edit=lambda f: f.drop(columns=["id"])))
    assert t.ids[0] == "0" and t.ids[599] == "599"


def test_parquet_integer_column_with_nulls(make_table):
    def edit(f):
        f["label"] = f["label"].astype("Int64")
        f.loc[4, "label"] = None

    t = read_score_table(make_table(edit=edit))
    assert t.label is not None and np.isnan(t.label[4]) and t.label.dtype == np.float64
    assert set(np.unique(t.label[~np.isnan(t.label)])) <= {0.0, 1.0}


def test_fill_splits_widens_to_the_names_and_counts_other_names():
    out = fill_splits(np.full(100, ""), {"opt": 0.5, "eval": 0.5}, seed=0)
    assert sorted(set(out.tolist())) == ["eval", "opt"] and int((out == "eval").sum()) == 50
    given = np.array(["train", "eval", "eval"])
    same = fill_splits(given, {"opt": 1.0}, seed=0)
    assert same.tolist() == given.tolist() and same is not given


def test_counts_orders_known_splits_then_others(make_table):
    t = read_score_table(make_table())
    split = np.array(["eval", "", "custom", "ht", "eval"] * 120)
    assert list(t.with_split(split).counts().items()) == [
        ("ht", 120),
        ("eval", 240),
        ("unassigned", 120),
        ("custom", 120),
    ]
    assert t.with_split(np.full(600, "ht")).counts() == {"ht": 600}
