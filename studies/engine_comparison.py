"""The fast REML engine against statsmodels' MixedLM on boundary-prone designs.

Aims: show the difference in convergence, bias and coverage between the two engines of MixedLM when the
group variance is small or zero and there are few small groups (where statsmodels often warns, fails to
converge or stops short of the REML optimum; lme4 and the fast engine agree).
Data: random intercept, 5, 10 or 30 groups of 5, ICC 0, 0.02 or 0.1, a cluster-level treatment (0.3) and
a unit-level covariate.
Estimands: treat, x, var(group) (true value 0 at ICC 0), var(residual).
Methods: MixedLM(engine="fast") and MixedLM(engine="statsmodels"), both REML with z intervals.
Performance: bias, coverage, RMSE; the counts of boundary, non-converged and failed fits per engine are in
summary.nc (n_boundary, n_nonconverged, n_fit_failed).
"""

from simstudy.design import Design
from simstudy.dgp.clustered import RandomIntercept
from simstudy.estimators import MixedLM
from simstudy.study import Study

FORMULA = "y ~ x + treat"

study = Study(
    name="engine_comparison",
    design=Design({"n_groups": [5, 10, 30], "group_size": [5], "icc": [0.0, 0.02, 0.1],
                   "treatment_effect": [0.3]}),
    dgp=RandomIntercept(),
    estimators={
        "fast": MixedLM(FORMULA, groups="group", engine="fast"),
        "statsmodels": MixedLM(FORMULA, groups="group", engine="statsmodels"),
    },
    reps=200,
    seed=4,
    show=("treat", "var(group)"),
    description={
        "aims": "Convergence, bias and coverage of two REML engines on boundary-prone designs.",
        "data": "Random intercept; 5, 10 or 30 groups of 5; ICC 0, 0.02, 0.1; treatment 0.3.",
        "estimands": "treat, x, var(group), var(residual).",
        "methods": "MixedLM fast engine (exact profiled REML); MixedLM statsmodels engine.",
        "performance": "bias, coverage, RMSE; boundary / non-converged / failed counts.",
    },
)
