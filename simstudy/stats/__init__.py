"""Statistics of a simulation study: performance measures with Monte Carlo standard errors
(:mod:`.measures`, numpy functions and an xarray layer) and the front end for tables of estimates made
elsewhere (:mod:`.table`)."""
