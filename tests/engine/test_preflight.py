"""Bad DGP output and estimators that name missing columns fail before the run starts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simstudy.engine.preflight import check_data, check_estimator
from simstudy.estimators import OLS

CELL = {"n": 3}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "must return a dict of columns"),
        ({"y": np.array([1.0, np.nan])}, "NaN or infinite values in column 'y'"),
        ({"y": np.ones((2, 2))}, "not 1-D"),
        ({"y": np.ones(3), "x": np.ones(2)}, "different or zero lengths"),
        ({"y": np.ones(0)}, "different or zero lengths"),
    ],
)
def test_bad_data(data, message):
    with pytest.raises(ValueError, match=message):
        check_data(data, CELL)


def test_good_data_passes():
    check_data({"y": np.ones(3), "g": np.array(["a", "b", "c"])}, CELL)
    check_data(pd.DataFrame({"y": [1.0, 2.0]}), CELL)


def test_missing_columns():
    data = {"y": np.ones(4), "x": np.ones(4)}
    with pytest.raises(ValueError, match="estimator 'ols': formula 'y ~ z' names column 'z'"):
        check_estimator("ols", OLS("y ~ z"), data)
    with pytest.raises(ValueError, match="estimator 'cr': groups column 'g' is not in the data"):
        check_estimator("cr", OLS("y ~ x", groups="g"), data)
    check_estimator("ok", OLS("y ~ x"), data)
