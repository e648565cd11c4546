"""A cluster-randomised trial with a binary outcome: GLMM, GEE and cluster-level analyses with few clusters.

Aims: type I error and power of the analyses used for binary outcomes in cluster-randomised trials when
clusters are few (Leyrat et al. 2018, Int J Epidemiol 47:321): which keep their nominal level, and what each
estimates (a GLMM the conditional log odds ratio, GEE and the naive analysis the marginal one).
Data-generating mechanism: simstudy.dgp.BinaryTrial: K clusters (half treated) of mean size 30 (CV 0 or
0.6), control-arm prevalence 0.3, odds ratio 1 (type I error) or 2 (power, conditional), ICC 0.05 or 0.2
on the latent scale.
Estimands: `treat`, each analysis against its own estimand (simstudy.dgp.binary's docstring): the
conditional log odds ratio (GLMM), the marginal log odds ratio (GEE, naive logistic regression, and the
cluster-level t test on the log-odds of the arms' mean cluster proportions).
Methods: GLMM by Laplace and by adaptive Gauss-Hermite quadrature (10 points), z intervals; GEE
(exchangeable) with the uncorrected sandwich (z) and the Mancl-DeRouen, Kauermann-Carroll and Fay-Graubard
corrections (t, K - 2 df); the unweighted cluster-level t test (K - 2 df); naive logistic regression.
Performance: type I error and power (p < 0.05, failed fits excluded and, as power_all, counted as
non-rejections), bias, coverage, with MCSE.
"""

from simstudy.design import Design
from simstudy.dgp.binary import BinaryTrial
from simstudy.estimators import GEE, GLMM, ClusterLevel
from simstudy.study import Study

F = "y ~ treat"

study = Study(
    name="binary_cluster_trial",
    design=Design({"n_clusters": [6, 10, 20, 40], "cluster_size": [30], "size_spread": [0.0, 0.6],
                   "icc": [0.05, 0.2], "prevalence": [0.3], "odds_ratio": [1.0, 2.0]}),
    dgp=BinaryTrial(estimands=("conditional", "marginal")),
    estimators={
        "glmm_laplace": GLMM(F, groups="cluster"),
        "glmm_agq": GLMM(F, groups="cluster", nagq=10),
        "gee": GEE(F, groups="cluster", df=None),
        "gee_md": GEE(F, groups="cluster", correction="md"),
        "gee_kc": GEE(F, groups="cluster", correction="kc"),
        "gee_fg": GEE(F, groups="cluster", correction="fg"),
        "cluster_t": ClusterLevel(F, groups="cluster", scale="log-odds"),
        "naive": GEE(F, groups="cluster", corr="independence", correction="model", df=None),
    },
    reps=1000,
    seed=20261202,
    show=("treat",),
    labels={"n_clusters": "Clusters", "size_spread": "Size CV", "icc": "ICC (latent)", "odds_ratio": "Odds ratio",
            "glmm_laplace": "GLMM, Laplace", "glmm_agq": "GLMM, AGQ 10", "gee": "GEE", "gee_md": "GEE, MD",
            "gee_kc": "GEE, KC", "gee_fg": "GEE, FG", "cluster_t": "Cluster-level t", "naive": "Naive logistic"},
    description={
        "aims": "Type I error and power of GLMM, GEE (with small-sample corrections), cluster-level and naive "
                "analyses of a binary outcome with few clusters.",
        "data": "BinaryTrial: K in {6, 10, 20, 40} clusters of mean size 30 (CV 0 or 0.6), prevalence 0.3, "
                "odds ratio 1 or 2, latent ICC 0.05 or 0.2.",
        "estimands": "treat: conditional log OR (GLMM), marginal log OR (GEE, naive, cluster-level).",
        "methods": "GLMM Laplace and AGQ(10); GEE exchangeable: sandwich (z), MD, KC, FG (t, K-2 df); "
                   "cluster-level t test on log-odds; naive logistic regression.",
        "performance": "type I error, power, bias, coverage (MCSE).",
    },
)
