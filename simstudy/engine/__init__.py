"""The run engine: a study's cells become tasks (chunks of replicates), run on workers, checkpointed, and
assembled into the estimates and summary datasets.

Flow: :mod:`.preflight` (check one replicate) -> :mod:`.plan` (what is missing, given the checkpoints) ->
:mod:`.dispatch` (tasks to joblib or Dask workers; :mod:`.cluster` sets those up) -> :mod:`.chunk` (what a
worker does: generate and fit, seeded by :mod:`.rng`) -> :mod:`.checkpoint` (one file per finished chunk,
fingerprinted by :mod:`.fingerprint`) -> :mod:`.assemble` (the datasets) -> :mod:`.store` (atomic files).
:mod:`.runner` drives it; :mod:`.lock` and :mod:`.progress` serve it. It returns datasets and prints no
tables (that is :mod:`simstudy.output`).
"""
