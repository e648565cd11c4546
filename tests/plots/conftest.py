"""One small real run of the cluster-trial study, shared by the plot tests (made once per session)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib
import pytest
import xarray as xr

matplotlib.use("Agg")

from simstudy.design import Design  # noqa: E402
from simstudy.runner import RunConfig, run_study  # noqa: E402
from simstudy.store import read_netcdf  # noqa: E402
from simstudy.study import load_study  # noqa: E402

STUDY = Path(__file__).resolve().parents[2] / "studies" / "cluster_trial.py"

#: Three factors that vary (2 x 2 x 2 cells), one held fixed: enough for facets and the nested loop.
DESIGN = {"n_groups": [6, 20], "group_size": [5, 10], "icc": [0.05, 0.2], "treatment_effect": [0.3]}
REPS = 40
METHODS = ["ols", "ols_cluster", "lmm", "lmm_t"]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run directory: 8 cells x 40 replicates x 4 methods (about 2 s)."""
    study = replace(load_study(STUDY), design=Design(DESIGN))
    out = tmp_path_factory.mktemp("plots") / "run"
    run_study(study, RunConfig(reps=REPS, jobs=1, quiet=True, out=out))
    return out


@pytest.fixture(scope="session")
def summary(run_dir: Path) -> xr.Dataset:
    """The run's summary.nc, read back from disk as a user would."""
    return read_netcdf(run_dir / "summary.nc")


@pytest.fixture(scope="session")
def estimates(run_dir: Path) -> xr.Dataset:
    """The run's estimates.nc, read back from disk."""
    return read_netcdf(run_dir / "estimates.nc")
