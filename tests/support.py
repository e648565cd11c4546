"""Shared test support: paths of the small study files the tests run, and a checkpoint tamperer."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
TOY = HERE / "toy_study.py"
SLOW = HERE / "slow_study.py"
REFERENCE = HERE.parent.parent / "shared" / "reference"


def tamper(path: Path) -> None:
    """Change one estimate in a checkpoint and keep its metadata: silent corruption of the data."""
    table = pq.read_table(path)
    name = next(n for n in table.column_names if n.startswith("estimate|"))
    values = table.column(name).to_numpy().copy()
    values[0] += 1e-9
    table = table.set_column(table.column_names.index(name), name, pa.array(values))
    pq.write_table(table, path)
