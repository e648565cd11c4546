"""Teaching methods, the seed notebook's multiplicative model: does the linear (mixed) model still do its job?

Data (simstudy.dgp.teaching.TeachingMethodsMultiplicative): score = min((15 + 19 gpa) * U_instructor * m_method
+ N(0, 10^2), 100), GPA ~ N(3, 0.25^2) capped at 4, instructor multipliers U ~ N(1, sd^2) drawn per
replicate, fixed method multipliers 1, 1.05, 1.10 (the notebook drew them once at random; fixed here so
that the estimand is the same in every replicate). The fitted models are linear, so they are misspecified.

Estimands, defined precisely in the DGP's docstring and computed by exact numerical integration:
- `C(method)[T.k]`: E[score | method k] - E[score | method 0], the cap included (3.49 and 6.87 points at
  the defaults, not the uncapped 3.60 and 7.20).
- `hs_gpa`: the population least-squares slope of score ~ hs_gpa + C(method), the average over methods
  of Cov(gpa, score | method) / Var(gpa) (19.03 at the defaults); `Intercept` = E[score | method 0] -
  slope * E[gpa].
- `var(instructor)`: the variance of instructors' expected scores within a method, averaged over methods;
  `var(residual)`: the within-instructor variance around the projection (what the ANOVA/REML moment
  equations target; 52.4 and 94.0 at the defaults).

Methods: as in teaching_methods.py: OLS; OLS clustered by instructor; OLS with instructor dummies (method
effects not estimable, reported as NaN); the linear mixed model with a random intercept per instructor.
"""

from simstudy.design import Design
from simstudy.dgp.teaching_multiplicative import TeachingMethodsMultiplicative
from simstudy.estimators import OLS, MixedLM
from simstudy.study import Study

FORMULA = "score ~ hs_gpa + C(method)"

study = Study(
    name="teaching_multiplicative",
    design=Design({"instructors_per_method": [3, 10], "students_per_instructor": [10, 30],
                   "instructor_sd": [0.0, 0.1, 0.2]}),
    dgp=TeachingMethodsMultiplicative(),
    estimators={
        "ols": OLS(FORMULA),
        "ols_cluster": OLS(FORMULA, groups="instructor"),
        "ols_dummies": OLS(FORMULA, fixed_effects="instructor"),
        "lmm": MixedLM(FORMULA, groups="instructor"),
    },
    reps=500,
    seed=5,
    show=("C(method)[T.1]", "C(method)[T.2]", "hs_gpa", "var(instructor)"),
    description={
        "aims": "Whether OLS and the linear mixed model estimate method differences well when the seed's "
                "multiplicative, capped model generated the data.",
        "data": "3 methods (multipliers 1, 1.05, 1.10) x instructors (multiplier SD 0, 0.1 or 0.2) x students; "
                "score (15 + 19 GPA) x multipliers + N(0, 10^2), capped at 100; GPA N(3, 0.25^2) capped at 4.",
        "estimands": "C(method)[T.1], C(method)[T.2] (population mean differences, cap included); hs_gpa and "
                     "Intercept (population least-squares projection); var(instructor), var(residual).",
        "methods": "OLS; OLS clustered by instructor; OLS with instructor dummies; LMM (REML).",
        "performance": "bias, coverage, RMSE, model vs empirical SE.",
    },
)
