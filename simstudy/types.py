"""Type aliases shared across simstudy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:  # pandas costs ~0.3 s to import; a worker that never sees a DataFrame need not pay it
    import pandas as pd

#: One replicate's data: a mapping of column name to a 1-D array (or a DataFrame).
Data = Union[Mapping[str, np.ndarray], "pd.DataFrame"]

#: The values of the design factors for one cell, by factor name.
Factors = Mapping[str, Any]

#: True values of the estimands, by parameter name.
Truth = Mapping[str, float]
