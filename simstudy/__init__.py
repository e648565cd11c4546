"""simstudy: Monte Carlo simulation studies that compare statistical methods."""

__version__ = "0.1.0"
