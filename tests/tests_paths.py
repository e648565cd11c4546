"""Paths of the small study files the tests run."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
TOY = HERE / "toy_study.py"
SLOW = HERE / "slow_study.py"
REFERENCE = HERE.parent.parent / "shared" / "reference"
