"""Shared fixtures: where the published reference tables live."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference():
    """Load a published reference table from ../shared/reference by file stem."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference tables not found at {REFERENCE}")

    def load(name: str) -> pd.DataFrame:
        return pd.read_csv(REFERENCE / f"{name}.csv")

    return load
