"""simstudy.estimators.formula: design matrices against patsy (statsmodels' formula engine) and the fast level
coding."""

import numpy as np
import pandas as pd
import patsy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from simstudy.estimators.formula import Formula, _levels_codes, group_codes


@pytest.fixture(scope="module")
def df():
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "g": rng.integers(0, 4, n),  # small ints: the bincount path
            "k": rng.integers(-3, 3, n),  # negative ints
            "big": rng.choice([5, 10**9, 7 * 10**9], n),  # wide range: the np.unique path
            "h": rng.choice(["a", "b", "c"], n),  # strings
        }
    )


@pytest.mark.parametrize(
    "text",
    [
        "y ~ x",
        "y ~ x + C(g)",
        "y ~ C(h) + x",
        "y ~ x + z + x:z",
        "y ~ x + C(h):x",
        "y ~ x + C(g):x",
        "y ~ C(g) - 1",
        "y ~ 0 + C(h) + x",
        "y ~ x + C(k)",
        "y ~ x + C(big)",
        "y ~ C(g) + C(h) + C(g):C(h)",
    ],
)
def test_build_matches_patsy_names_and_values(df, text):
    y, X, names = Formula(text).build({c: df[c].to_numpy() for c in df.columns})
    ref = patsy.dmatrix(text.split("~")[1], df, return_type="dataframe")
    assert set(names) == set(ref.columns)
    assert len(names) == len(ref.columns)
    for j, name in enumerate(names):
        np.testing.assert_array_equal(X[:, j], ref[name].to_numpy())
    np.testing.assert_array_equal(y, df["y"].to_numpy())
    assert X.flags.f_contiguous and X.dtype == np.float64


def test_build_dataframe_and_dict_agree(df):
    f = Formula("y ~ x + C(g) + C(h):x")
    y1, X1, n1 = f.build(df)
    y2, X2, n2 = f.build({c: df[c].to_numpy() for c in df.columns})
    assert n1 == n2
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)


def test_level_names_of_small_ints_are_the_values(df):
    _, _, names = Formula("y ~ C(k)").build(df)
    levels = sorted(set(df["k"]))
    assert names == ("Intercept",) + tuple(f"C(k)[T.{v}]" for v in levels[1:])


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.uint64]),
        shape=st.integers(0, 50),
        elements=st.integers(0, 120),
    ),
    st.integers(-60, 0),
)
def test_levels_codes_equals_np_unique_for_ints(values, shift):
    if values.dtype.kind == "i":
        values = (values.astype(np.int64) + shift).astype(values.dtype)
    levels, codes = _levels_codes(values)
    ref_levels, ref_codes = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(levels, ref_levels)
    assert levels.dtype == ref_levels.dtype
    np.testing.assert_array_equal(codes, ref_codes.reshape(-1))
    assert codes.dtype == np.intp


@pytest.mark.parametrize(
    "values",
    [
        np.array([3, 1, 3, 2]),
        np.array([10**12, -(10**12), 0]),  # range too wide for a lookup table
        np.array([2.5, 1.0, 2.5]),
        np.array(["b", "a", "b"]),
        np.array(["b", "a", "b"], dtype=object),
        np.array([True, False, True]),
        np.array([], dtype=np.int64),
        np.array([-128, 127, 0, -128], dtype=np.int8),  # a shift that overflows int8
        np.array([2**64 - 1, 2**64 - 3, 2**64 - 1], dtype=np.uint64),  # beyond int64, small range
    ],
)
def test_levels_codes_equals_np_unique_other_types(values):
    levels, codes = _levels_codes(values)
    ref_levels, ref_codes = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(levels, ref_levels)
    np.testing.assert_array_equal(codes, ref_codes.reshape(-1))


def test_group_codes():
    codes, n = group_codes({"g": np.array([7, 3, 7, 9])}, "g")
    np.testing.assert_array_equal(codes, [1, 0, 1, 2])
    assert n == 3 and codes.dtype == np.intp
    codes, n = group_codes(pd.DataFrame({"g": ["b", "a", "b"]}), "g")
    np.testing.assert_array_equal(codes, [1, 0, 1])
    assert n == 2
    with pytest.raises(ValueError, match="grouping column 'h'"):
        group_codes({"g": np.array([1])}, "h")


# --- the numeric fast path and shared designs ------------------------------------------------------------


def test_numeric_formulas_build_as_the_general_path():
    rng = np.random.default_rng(1)
    n = 30
    data = {"y": rng.normal(size=n), "x": rng.normal(size=n), "i": rng.integers(-3, 3, n),
            "b": rng.integers(0, 2, n).astype(bool), "f": rng.normal(size=n).astype(np.float32),
            "u": rng.integers(0, 9, n).astype(np.uint8), "s": np.array(["1.5"] * n)}
    for text in ("y ~ x + i + b + f + u", "y ~ x - 1", "i ~ 0 + b", "y ~ s"):
        fast, general = Formula(text), Formula(text)
        general._numeric = None
        a, b = fast.build(data), general.build(data)
        assert a[2] == b[2] and a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
        assert a[1].flags.f_contiguous and a[1].dtype == np.float64


def test_shared_designs_build_once_per_formula_and_data():
    import threading

    from simstudy.estimators.formula import shared_designs

    rng = np.random.default_rng(2)
    one, two = ({"y": rng.normal(size=9), "x": rng.normal(size=9)} for _ in range(2))
    with shared_designs():
        a, b = Formula("y ~ x").build(one), Formula("y ~ x").build(one)
        assert a[1] is b[1] and not a[1].flags.writeable
        with pytest.raises(ValueError):
            a[1][0, 0] = 5.0  # an estimator may not change the design the next one gets
        assert Formula("y ~ x").build(two)[1] is not a[1]
        assert Formula("y ~ x - 1").build(one)[1] is not a[1]
        other = []
        threading.Thread(target=lambda: other.append(Formula("y ~ x").build(one)[1])).start()
        while not other:
            pass
        assert other[0] is not a[1] and other[0].flags.writeable  # not shared with another thread
    c = Formula("y ~ x").build(one)
    assert c[1] is not a[1] and c[1].flags.writeable
    np.testing.assert_array_equal(c[1], a[1])


def test_shared_designs_keep_at_most_their_byte_budget(monkeypatch):
    import simstudy.estimators.formula as formula

    monkeypatch.setattr(formula, "SHARED_BYTES", 100)
    data = {"y": np.zeros(10), "x": np.ones(10)}  # a design of 160 bytes: not kept
    with formula.shared_designs():
        a, b = Formula("y ~ x").build(data), Formula("y ~ x").build(data)
        assert a[1] is not b[1] and a[1].flags.writeable


def test_column_cache_finds_the_last_key_without_hashing_and_others_by_hash():
    from simstudy.estimators.formula import ColumnCache

    class Key(tuple):
        hashes = 0

        def __hash__(self):
            Key.hashes += 1
            return super().__hash__()

    cache = ColumnCache()
    a, b = Key(("<i8", b"\x01" * 16)), Key(("<i8", b"\x02" * 16))
    cache[a] = "A"
    cache[b] = "B"
    Key.hashes = 0
    assert cache.get(Key(("<i8", b"\x02" * 16))) == "B" and Key.hashes == 0  # the last one: compared, not hashed
    assert cache.get(Key(("<i8", b"\x01" * 16))) == "A" and Key.hashes == 1  # another one: by hash
    assert cache.get(Key(("<i8", b"\x01" * 16))) == "A" and Key.hashes == 1  # now the last one
    assert cache.get(Key(("<i8", b"\x03" * 16))) is None and cache.get("x", 5) == 5
    assert cache.get(Key(("<i8", b"\x01" * 16))) == "A"  # a miss does not replace the last key found


def test_numeric_columns_fill_the_same_numbers_as_build_or_step_aside():
    from simstudy.estimators.formula import fill_rows

    rng = np.random.default_rng(3)
    data = {"y": rng.normal(size=7), "x": rng.normal(size=7).astype(np.float32), "t": np.arange(7) % 2,
            "u": np.arange(7, dtype=np.uint8), "g": np.array(list("aabbccd"))}
    for text, intercept in (("y ~ x + t + u", True), ("y ~ 0 + x + t", False)):
        f = Formula(text)
        y, X, names = f.build(data)
        y2, cols, names2 = f.numeric_columns(data)
        out = np.full((X.shape[1], 7), np.nan)
        fill_rows(out, cols, intercept)
        assert names2 == names and y2.tobytes() == y.tobytes() and out.T.tobytes() == np.ascontiguousarray(X).tobytes()
    assert Formula("y ~ x + C(g)").numeric_columns(data) is None  # categorical: build's general path
    assert Formula("y ~ x").numeric_columns(dict(data, x=np.ones((7, 2)))) is None  # not 1-D
    assert Formula("y ~ x").numeric_columns(dict(data, x=np.ones(6))) is None  # wrong length: build decides
    with pytest.raises(ValueError, match="'z'"):
        Formula("y ~ z").numeric_columns(data)
