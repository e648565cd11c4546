"""Shared test support: paths of the small study files the tests run, and a checkpoint tamperer."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.container import ErrorbarContainer

HERE = Path(__file__).resolve().parent
TOY = HERE / "toy_study.py"
SLOW = HERE / "slow_study.py"
REFERENCE = HERE / "data" / "rsimsum"
ROOT = HERE.parent
STUDIES = ROOT / "studies"


def tamper(path: Path) -> None:
    """Change one estimate in a checkpoint and keep its metadata: silent corruption of the data."""
    table = pq.read_table(path)
    name = next(n for n in table.column_names if n.startswith("estimate|"))
    values = table.column(name).to_numpy().copy()
    values[0] += 1e-9
    table = table.set_column(table.column_names.index(name), name, pa.array(values))
    pq.write_table(table, path)


def dense_criterion(y: np.ndarray, X: np.ndarray, H: np.ndarray, reml: bool) -> float:
    """-2 log-likelihood (REML or ML) from dense matrices, profiled over sigma^2, for V = sigma^2 H: the
    definition that the fast engine's sufficient-statistic formulas are checked against."""
    n, p = X.shape
    Hi = np.linalg.inv(H)
    M = X.T @ Hi @ X
    b = np.linalg.solve(M, X.T @ Hi @ y)
    r = y - X @ b
    q = r @ Hi @ r
    dof = n - p if reml else n
    out = dof * (1 + np.log(2 * np.pi * q / dof)) + np.linalg.slogdet(H)[1]
    return out + (np.linalg.slogdet(M)[1] if reml else 0.0)


#: The cluster-trial study's methods, in order (the plot tests' shared run uses that study).
CLUSTER_TRIAL_METHODS = ["ols", "ols_cluster", "lmm", "lmm_t"]


def errorbar_lines(ax) -> list:
    """The data line of each method's error bar plot on ``ax``, labelled with the method (as in the legend)."""
    out = []
    for bar in ax.containers:
        if isinstance(bar, ErrorbarContainer) and bar.get_label() in CLUSTER_TRIAL_METHODS:
            line = bar.lines[0]
            line.set_label(bar.get_label())
            out.append(line)
    return out


def instructor_anova(r: np.ndarray, n_instructors: int, size: int) -> tuple[float, float]:
    """Unbiased one-way ANOVA estimates (var(instructor), var(residual)) on balanced data."""
    R = r.reshape(n_instructors, size)
    means = R.mean(axis=1)
    msw = ((R - means[:, None]) ** 2).sum() / (n_instructors * (size - 1))
    msb = size * ((means - means.mean()) ** 2).sum() / (n_instructors - 1)
    return (msb - msw) / size, msw
