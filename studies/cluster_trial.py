"""A cluster-randomised trial: the classic check with a known answer.

Aims: show how ignoring clustering breaks inference on a cluster-level treatment, and which analyses keep
their nominal coverage with few clusters.
Data-generating mechanism: two-level random intercept (simstudy.dgp.clustered.RandomIntercept): G clusters
of m units, half of the clusters treated (effect 0.3 on an outcome with total variance ~1.1), ICC varied,
a unit-level covariate x (slope 0.5).
Estimand: the treatment effect `treat` (also reported: x, the variance components).
Methods: OLS with classical SEs (ignores clustering), OLS with cluster-robust (CR1) SEs and t(G - 1)
intervals, the linear mixed model (REML, random intercept) with z intervals, and the same with
between-within t intervals (G - 2 df for `treat`).
Performance: bias, empirical and model SE, coverage, power, with Monte Carlo SEs.

Known answer: naive OLS SEs of `treat` are too small by about sqrt(1 + (m - 1) ICC) (the design effect),
so its coverage is about 2 Phi(1.96 / sqrt(DE)) - 1 (formula): 0.840 at m = 20, ICC = 0.05 and 0.629 at
ICC = 0.2; this study's run (seed 20261126, 1000 replicates per cell, MCSE about 0.012-0.015) gives
0.832-0.849 and 0.614-0.635 over the four cluster counts.
With 6 clusters (the same run), the mixed model's z interval under-covers where clustering matters (0.914
at m = 20, ICC = 0.05; 0.872 at ICC = 0.2) and the between-within t interval (4 df) over-covers
everywhere but there (0.991, 0.975, 0.976; 0.942 at m = 20, ICC = 0.2); cluster-robust OLS with t(5) gives
0.903-0.934. From 20 clusters on, cluster-robust OLS and both mixed-model intervals are within 0.93-0.97.
"""

from simstudy.design import Design
from simstudy.dgp.clustered import RandomIntercept
from simstudy.estimators import OLS, MixedLM
from simstudy.study import Study

FORMULA = "y ~ x + treat"

study = Study(
    name="cluster_trial",
    design=Design({"n_groups": [6, 10, 20, 40], "group_size": [5, 20], "icc": [0.05, 0.2],
                   "treatment_effect": [0.3]}),
    dgp=RandomIntercept(),
    estimators={
        "ols": OLS(FORMULA),
        "ols_cluster": OLS(FORMULA, groups="group"),
        "lmm": MixedLM(FORMULA, groups="group"),
        "lmm_t": MixedLM(FORMULA, groups="group", df_method="between-within"),
    },
    reps=1000,
    seed=20261126,
    show=("treat",),
    description={
        "aims": "Coverage and power for a cluster-level treatment when clustering is ignored or modelled.",
        "data": "Random intercept; G in {6, 10, 20, 40} clusters of m in {5, 20}; ICC in {0.05, 0.2}; "
                "half the clusters treated (effect 0.3); unit-level covariate x.",
        "estimands": "treat (the treatment effect); also x, var(group), var(residual).",
        "methods": "OLS naive; OLS cluster-robust CR1 with t(G-1); LMM REML (z); LMM REML with "
                   "between-within t.",
        "performance": "bias, emp_se, model_se, coverage, power (MCSE for each).",
    },
)
