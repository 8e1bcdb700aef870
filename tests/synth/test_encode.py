"""Encoding tables into domain codes and decoding codes back to values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cardiobox.synth.domain import Domain, DomainError
from cardiobox.synth.encode import Encoded, OutOfRangeWarning, decode, encode


def domain(*columns: dict[str, object]) -> Domain:
    return Domain.model_validate({"name": "t", "columns": list(columns)})


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_numeric_codes_edges_missing_and_out_of_range() -> None:
    d = domain({"name": "x", "kind": "numeric", "bounds": [0, 10], "bins": 5})
    t = pa.table({"x": [0.0, 1.99, 2.0, 9.99, 10.0, -0.01, 10.01, None, float("nan")]})
    with pytest.warns(OutOfRangeWarning, match="x: 2 values outside the domain"):
        e = encode(t, d)
    # bins [0,2) [2,4) ... [8,10]; MISSING 5, OUT_OF_RANGE 6; NaN counts as missing
    assert e.codes[:, 0].tolist() == [0, 0, 1, 4, 4, 6, 6, 5, 5]
    assert e.out_of_range == {"x": 2}
    assert e.missing == {"x": 2}
    assert e.sizes == [7] and e.columns == ["x"]
    assert e.report() == ["x: 2 values outside the domain coded OUT_OF_RANGE"]
    assert e.codes.dtype == np.int64


def test_integer_codes_refuse_fractions() -> None:
    d = domain({"name": "n", "kind": "integer", "bounds": [0, 3]})
    t = pa.table({"n": [0.0, 3.0, 1.5, 4.0, None]})  # a float column of whole numbers is fine
    with pytest.warns(OutOfRangeWarning):
        e = encode(t, d)
    assert e.codes[:, 0].tolist() == [0, 3, 5, 5, 4]


def test_categories_match_by_arrow_type() -> None:
    d = domain(
        {"name": "n", "kind": "categorical", "categories": [1, 2, 3]},
        {"name": "s", "kind": "categorical", "categories": ["1", "2", "x"]},
    )
    t = pa.table(
        {
            "n": pa.array([1.0, 3, None, 7], pa.float64()),  # 1.0 matches the number 1
            "s": pa.array(["1", "x", None, "3"]),
        }
    )
    e = encode(t, d, warn=False)
    assert e.codes.tolist() == [[0, 0], [2, 2], [3, 3], [4, 4]]
    assert e.out_of_range == {"n": 1, "s": 1}
    # a string column never matches number categories, nor numbers string categories
    bad = pa.table({"n": pa.array(["1", "2", "3", "1"]), "s": t["s"]})
    with pytest.raises(DomainError, match="column 'n' is string in the table") as err:
        encode(bad, d)
    assert "a string '1' never matches a number 1" in str(err.value)
    bad = pa.table({"n": t["n"], "s": pa.array([1, 2, 3, 1])})
    with pytest.raises(DomainError, match="column 's' is int64"):
        encode(bad, d)


def test_dictionary_and_large_string_columns() -> None:
    d = domain({"name": "s", "kind": "categorical", "categories": ["a", "b"]})
    t = pa.table({"s": pa.array(["b", "a", None, "b"]).dictionary_encode()})
    assert encode(t, d).codes[:, 0].tolist() == [1, 0, 2, 1]
    t = pa.table({"s": pa.array(["b", "a", None, "b"], pa.large_string())})
    assert encode(t, d).codes[:, 0].tolist() == [1, 0, 2, 1]


def test_booleans_from_bool_and_zero_one_columns() -> None:
    d = domain({"name": "b", "kind": "boolean"})
    assert encode(pa.table({"b": [True, False, None]}), d).codes[:, 0].tolist() == [1, 0, 2]
    with pytest.warns(OutOfRangeWarning):
        e = encode(pa.table({"b": [1, 0, None, 2]}), d)
    assert e.codes[:, 0].tolist() == [1, 0, 2, 3]
    with pytest.raises(DomainError, match="booleans need true/false or 0/1"):
        encode(pa.table({"b": ["yes"]}), d)


def test_columns_missing_from_either_side_are_named() -> None:
    d = domain({"name": "a", "kind": "boolean"}, {"name": "b", "kind": "boolean"})
    with pytest.raises(DomainError, match=r"domain columns not in the table: \['b'\]"):
        encode(pa.table({"a": [True]}), d)
    with pytest.raises(DomainError, match=r"table columns not in domain 't': \['c'\]"):
        encode(pa.table({"a": [True], "b": [False], "c": [1]}), d)


def test_empty_table_encodes_to_no_rows() -> None:
    d = domain({"name": "a", "kind": "boolean"})
    e = encode(pa.table({"a": pa.array([], pa.bool_())}), d)
    assert e.codes.shape == (0, 1) and e.rows == 0
    assert decode(e.codes, d, rng()).num_rows == 0


MIXED = [
    {"name": "x", "kind": "numeric", "bounds": [-5, 5], "bins": 7},
    {"name": "y", "kind": "numeric", "edges": [0, 0.1, 0.15, 1, 100], "decimals": 2},
    {"name": "n", "kind": "integer", "bounds": [0, 99], "bins": 9},
    {"name": "k", "kind": "categorical", "categories": [3, 6, 7]},
    {"name": "f", "kind": "categorical", "categories": [0.5, 2]},
    {"name": "s", "kind": "categorical", "categories": ["female", "male", "other"]},
    {"name": "b", "kind": "boolean"},
    {"name": "i", "kind": "boolean", "dtype": "int64"},
    {"name": "when", "kind": "date", "origin": "2015-04-01", "bounds": [0, 364], "bins": 12},
    {"name": "seen", "kind": "date", "index": "when", "bounds": [-30, 30], "bins": 6},
    {"name": "stamp", "kind": "date", "index": "when", "bounds": [0, 10], "dtype": "timestamp[us]"},
]


def mixed_table(n: int, seed: int = 1) -> pa.Table:
    g = np.random.default_rng(seed)
    null = g.random((n, 11)) < 0.1
    null[:, 9:] |= null[:, 8:9]  # a date without its index would be out of range
    when = np.datetime64("2015-04-01") + g.integers(0, 365, n)
    seen = when + g.integers(-30, 31, n)
    stamp = when.astype("datetime64[us]") + g.integers(0, 11 * 86400 * 10**6, n)
    stamp = np.minimum(stamp, (when + 10).astype("datetime64[us]") + 86399 * 10**6)
    cols = {
        "x": g.uniform(-5, 5, n),
        "y": np.round(g.uniform(0, 100, n), 2),
        "n": g.integers(0, 100, n),
        "k": g.choice([3, 6, 7], n),
        "f": g.choice([0.5, 2.0], n),
        "s": g.choice(["female", "male", "other"], n),
        "b": g.random(n) < 0.3,
        "i": g.integers(0, 2, n),
        "when": when,
        "seen": seen,
        "stamp": stamp,
    }
    return pa.table({k: pa.array(v, mask=null[:, j]) for j, (k, v) in enumerate(cols.items())})


def test_round_trip_keeps_values_in_their_bins() -> None:
    d = domain(*MIXED)
    t = mixed_table(3000)
    e = encode(t, d)
    assert sum(e.out_of_range.values()) == 0
    out = decode(e.codes, d, rng(3))
    assert out.column_names == d.names
    # types: float64, int64 for integers, the categories' types, bool, date32 and timestamps
    assert out.schema.types == [
        pa.float64(),
        pa.float64(),
        pa.int64(),
        pa.int64(),
        pa.float64(),
        pa.string(),
        pa.bool_(),
        pa.int64(),
        pa.date32(),
        pa.date32(),
        pa.timestamp("us"),
    ]
    again = encode(out, d)
    # every decoded value falls in the bin (or category) it came from; NULL <-> MISSING;
    # a date whose index is NULL is NULL too (its index's MISSING code is kept)
    seen_j = d.names.index("seen")
    when_missing = e.codes[:, d.names.index("when")] == d.column("when").missing_code
    for j, name in enumerate(d.names):
        want = e.codes[:, j].copy()
        if d.column(name).kind == "date" and name != "when":
            want[when_missing] = d.column(name).missing_code
        np.testing.assert_array_equal(again.codes[:, j], want, err_msg=name)
    assert again.codes[:, seen_j].max() <= d.column("seen").size - 1
    # categories come back identical, with their values and types
    for name in ("k", "f", "s", "b", "i"):
        kept = pc.is_valid(t[name])
        assert out[name].filter(kept).to_pylist() == t[name].filter(kept).to_pylist()
    # numeric with decimals: values on the 0.01 grid
    y = np.asarray(out["y"].drop_null().to_numpy())
    np.testing.assert_allclose(y, np.round(y, 2), atol=1e-12)
    # dates: the index plus whole days
    diff = pc.days_between(out["when"], out["seen"]).drop_null().to_numpy()
    assert diff.min() >= -30 and diff.max() <= 30
    stamp_days = pc.days_between(out["when"], pc.cast(out["stamp"], pa.date32())).drop_null()
    assert pc.min(stamp_days).as_py() >= 0 and pc.max(stamp_days).as_py() <= 10


def test_integer_decode_covers_every_value_of_a_bin() -> None:
    d = domain({"name": "n", "kind": "integer", "bounds": [0, 9], "bins": 2})
    out = decode(np.zeros((4000, 1), dtype=np.int64), d, rng())
    assert sorted(set(out["n"].to_pylist())) == [0, 1, 2, 3, 4]


def test_uniform_within_bin() -> None:
    d = domain({"name": "x", "kind": "numeric", "bounds": [10, 20], "bins": 2})
    x = decode(np.ones((20000, 1), dtype=np.int64), d, rng())["x"].to_numpy()
    assert x.min() >= 15 and x.max() < 20
    # uniform on [15, 20): mean 17.5, sd 5/sqrt(12)
    assert abs(x.mean() - 17.5) < 4 * (5 / np.sqrt(12)) / np.sqrt(x.size)


def test_missing_and_out_of_range_decode_to_null() -> None:
    d = domain(
        {"name": "x", "kind": "numeric", "bounds": [0, 1]},
        {"name": "s", "kind": "categorical", "categories": ["a"]},
        {"name": "b", "kind": "boolean"},
    )
    codes = np.array([[20, 1, 2], [21, 2, 3], [0, 0, 1]])
    out = decode(codes, d, rng())
    assert out["x"].null_count == 2 and out["s"].to_pylist() == [None, None, "a"]
    assert out["b"].to_pylist() == [None, None, True]


def test_bad_codes_are_named() -> None:
    d = domain({"name": "b", "kind": "boolean"}, {"name": "x", "kind": "integer", "bounds": [0, 1]})
    with pytest.raises(DomainError, match=r"column 'x': code 4 is outside 0\.\.3"):
        decode(np.array([[0, 4]]), d, rng())
    with pytest.raises(DomainError, match="matrix"):
        decode(np.array([0, 1]), d, rng())


TTE = [
    {"name": "died", "kind": "boolean", "dtype": "int32"},
    {"name": "days", "kind": "integer", "bounds": [0, 365], "bins": 12, "event": "died"},
    {"name": "cens", "kind": "categorical", "categories": [0, 1]},
    {"name": "t", "kind": "numeric", "bounds": [0, 30], "bins": 5, "event": "cens"},
]


@pytest.mark.parametrize("seed", range(20))
def test_time_to_event_pairs_are_always_valid(seed: int) -> None:
    d = domain(*TTE)
    g = np.random.default_rng(seed)
    n = int(g.integers(1, 400))
    codes = np.column_stack([g.integers(0, s, n) for s in d.sizes()])
    out = decode(codes, d, g)
    for flag, dur in (("died", "days"), ("cens", "t")):
        lo, hi = d.column(dur).value_range()
        ev = out[flag].to_pylist()
        du = out[dur].to_pylist()
        for e_, x in zip(ev, du, strict=True):
            if e_ is not None:  # a known event (1) or censoring (0) always has a duration
                assert x is not None
            if x is not None:
                assert lo <= x <= hi and x >= 0
    # the repair draws from the rows with the same flag: a duration that was valid stays
    kept = codes[:, 1] < d.column("days").levels
    again = encode(out, d, warn=False).codes
    np.testing.assert_array_equal(again[kept, 1], codes[kept, 1])


def test_time_to_event_repair_uses_same_flag_durations() -> None:
    d = domain(*TTE[:2])
    # every died=1 row has duration bin 3 or MISSING; repaired rows must get bin 3
    codes = np.array([[1, 3]] * 50 + [[1, 13]] * 50 + [[0, 7]] * 50)
    again = encode(decode(codes, d, rng()), d, warn=False).codes
    assert set(again[:100, 1].tolist()) == {3}
    assert set(again[100:, 1].tolist()) == {7}


@pytest.mark.slow
def test_million_rows_thirty_columns_vectorised() -> None:
    """1,000,000 rows x 30 columns: whole-array code paths (a few seconds, no timing asserted)."""
    kinds = [
        {"kind": "numeric", "bounds": [0, 1], "bins": 20},
        {"kind": "integer", "bounds": [0, 1000]},
        {"kind": "categorical", "categories": [1, 2, 3, 4, 5]},
        {"kind": "categorical", "categories": ["a", "b", "c"]},
        {"kind": "boolean"},
    ]
    cols = [{"name": f"c{j}", **kinds[j % 5]} for j in range(30)]
    d = domain(*cols)
    n = 1_000_000
    g = np.random.default_rng(0)
    base = {
        0: pa.array(g.random(n)),
        1: pa.array(g.integers(0, 1001, n)),
        2: pa.array(g.integers(1, 6, n)),
        3: pa.DictionaryArray.from_arrays(
            pa.array(g.integers(0, 3, n).astype(np.int8)), pa.array(["a", "b", "c"])
        ),
        4: pa.array(g.random(n) < 0.5),
    }
    t = pa.table({c["name"]: base[j % 5] for j, c in enumerate(cols)})
    e = encode(t, d, warn=False)
    assert isinstance(e, Encoded) and e.codes.shape == (n, 30)
    assert sum(e.out_of_range.values()) == 0
    assert (e.codes.max(axis=0) < np.array(d.sizes())).all()
    out = decode(e.codes, d, rng())
    assert out.num_rows == n and out.num_columns == 30
    assert out["c2"].to_numpy()[:1000].tolist() == base[2].to_numpy()[:1000].tolist()
