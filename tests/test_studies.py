"""The studies in studies/: they load, run small, and the cluster trial shows the known answer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from simstudy.design import Design
from simstudy.dgp.clustered import design_effect
from simstudy.engine.runner import RunConfig, run_study
from simstudy.study import load_study

STUDIES = Path(__file__).resolve().parents[1] / "studies"


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.py")), ids=lambda p: p.stem)
def test_study_runs_small(path, tmp_path):
    study = load_study(path)
    first = {k: v[:1] for k, v in study.design.factors.items()}
    small = replace(study, design=Design(first))
    est, summary = run_study(small, RunConfig(reps=4, jobs=1, quiet=True, out=tmp_path / "o"), study_file=path)
    truth = small.truth_for(next(small.design.cells()))
    assert set(truth) <= set(est.coords["param"].values)
    assert int(summary["n_rep"].max()) == 4
    for method in study.estimators:
        assert int(summary["n_valid"].sel({"estimator": method}).max()) > 0, method


def test_cluster_trial_naive_ols_undercovers_as_the_design_effect_predicts(tmp_path):
    study = load_study(STUDIES / "cluster_trial.py")
    design = Design({"n_groups": [40], "group_size": [20], "icc": [0.05, 0.2], "treatment_effect": [0.3]})
    _, summary = run_study(replace(study, design=design), RunConfig(reps=400, jobs=2, quiet=True, out=tmp_path / "o"))
    s = summary.sel({"param": "treat", "n_groups": 40, "group_size": 20, "treatment_effect": 0.3})
    z = stats.norm.ppf(0.975)
    for icc in (0.05, 0.2):
        ols = s.sel({"icc": icc, "estimator": "ols"})
        predicted = 2 * stats.norm.cdf(z / np.sqrt(design_effect(20, icc))) - 1
        assert abs(float(ols["coverage"]) - predicted) < 4 * float(ols["coverage_mcse"]) + 0.01, (icc, predicted)
        assert float(ols["coverage"]) < 0.9
        for method in ("ols_cluster", "lmm", "lmm_t"):
            m = s.sel({"icc": icc, "estimator": method})
            assert abs(float(m["coverage"]) - 0.95) < 4 * float(m["coverage_mcse"]), (icc, method)
