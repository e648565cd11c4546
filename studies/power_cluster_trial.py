"""Power of a cluster-randomised trial with a continuous outcome: how many clusters are needed?

Aims: the number of clusters (half of them treated) that gives 80% power to detect a treatment effect of
0.3 (outcome SD about 1) with 20 participants per cluster and ICC 0.05, and how the analysis changes it.
Data-generating mechanism: two-level random intercept (simstudy.dgp.clustered.RandomIntercept), G clusters
of 20, floor(G/2) treated, a participant-level covariate x (slope 0.5), residual variance 1.
Estimand: `treat` (also reported: x and the variance components).
Methods: naive OLS (ignores clustering: its type I error is inflated, so its "power" is not a fair
comparison), cluster-robust OLS (CR1, t with G - 1 df), the linear mixed model with z intervals, with
between-within t (G - 2 df) and with Satterthwaite df.
Performance: power (share of p < 0.05), type I error at effect 0 (run with treatment_effect=0), coverage.

The analytic companion: simstudy.stats.power.cluster_trial_power(0.3, K, 20, 0.05, var=1/0.95) with K
clusters per arm; clusters_needed(...) gives the t-test answer as a first guess for `simstudy power`.
"""

from simstudy.design import Design
from simstudy.dgp.clustered import RandomIntercept
from simstudy.estimators import OLS, MixedLM
from simstudy.study import Study

FORMULA = "y ~ x + treat"

study = Study(
    name="power_cluster_trial",
    design=Design({"n_groups": [10, 20, 30, 40], "group_size": [20], "icc": [0.05], "treatment_effect": [0.3]}),
    dgp=RandomIntercept(),
    estimators={
        "ols": OLS(FORMULA),
        "ols_cluster": OLS(FORMULA, groups="group"),
        "lmm": MixedLM(FORMULA, groups="group"),
        "lmm_t": MixedLM(FORMULA, groups="group", df_method="between-within"),
        "lmm_satt": MixedLM(FORMULA, groups="group", df_method="satterthwaite"),
    },
    reps=1000,
    seed=20261201,
    show=("treat",),
    labels={"n_groups": "Clusters", "group_size": "Cluster size", "icc": "ICC", "ols": "OLS (naive)",
            "ols_cluster": "OLS, cluster-robust", "lmm": "LMM, z", "lmm_t": "LMM, between-within t",
            "lmm_satt": "LMM, Satterthwaite t"},
    description={
        "aims": "Clusters needed for 80% power, and how the analysis changes power and type I error.",
        "data": "Random intercept; G clusters of 20, half treated, effect 0.3, ICC 0.05; covariate x.",
        "estimands": "treat (the treatment effect); also x, var(group), var(residual).",
        "methods": "OLS naive; OLS cluster-robust CR1 (t, G-1 df); LMM REML with z, between-within t, "
                   "Satterthwaite t.",
        "performance": "power with exact intervals; type I error; coverage.",
    },
)
