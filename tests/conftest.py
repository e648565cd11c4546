"""Shared fixtures: the published reference tables, kept in tests/data/rsimsum (see its README)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "rsimsum"


@pytest.fixture(scope="session")
def reference():
    """Load a published reference table from tests/data/rsimsum by file stem."""

    def load(name: str) -> pd.DataFrame:
        return pd.read_csv(REFERENCE / f"{name}.csv")

    return load
