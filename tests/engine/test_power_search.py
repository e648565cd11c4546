"""The power search on real runs: the known answer, the stated confidence, resume after a kill."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy import stats

from simstudy.engine.power_search import PowerSearch, held_factors, search_power
from simstudy.engine.runner import RunConfig
from simstudy.engine.store import read_netcdf
from simstudy.study import load_study
from support import HERE, STUDIES

TOY = HERE / "power_toy_study.py"


def power(n: int, effect: float = 1.2) -> float:
    z = stats.norm.ppf(0.975)
    return float(stats.norm.sf(z - effect * np.sqrt(n)) + stats.norm.cdf(-z - effect * np.sqrt(n)))


def search(tmp_path, seed: int = 1, **kwargs):
    study = dataclasses.replace(load_study(TOY), seed=seed)
    args = dict(factor="n", target=0.8, estimator="z", param="mean", lo=2, hi=60, start=100, max_reps=3200) | kwargs
    return search_power(study, PowerSearch(**args), RunConfig(out=tmp_path / f"s{seed}", jobs=1, quiet=True))


def test_finds_the_known_answer_and_leaves_ordinary_evidence(tmp_path):
    exact = next(n for n in range(2, 61) if power(n) >= 0.8)
    result, out = search(tmp_path)
    assert exact == 6 and result.answer == exact
    assert result.at(6).verdict == "reaches" and result.at(5).verdict == "short"
    estimates = read_netcdf(out / "estimates.nc")
    assert sorted(estimates["n"].values.tolist()) == sorted(d.level for d in result.decisions)
    for d in result.decisions:  # each level holds the replicates it needed, the rest not run
        present = (estimates["status"].sel(n=d.level, estimator="z").values != -1).sum()
        assert present == d.reps
    record = json.loads((out / "search.json").read_text())
    assert record["answer"] == 6 and record["replicates"] == result.reps


@pytest.mark.slow
def test_stated_confidence_holds_over_repeated_searches(tmp_path):
    wrong, runs = 0, 12
    for seed in range(runs):
        result, _ = search(tmp_path, seed=seed + 10, confidence=0.8)
        ok = all({"reaches": power(d.level) >= 0.8, "short": power(d.level) < 0.8,
                  "indeterminate": d.lower <= power(d.level) <= d.upper}[d.verdict] for d in result.decisions)
        wrong += not ok
    assert wrong <= 2  # at most 20% expected; the union bound makes it far rarer


def test_other_factors_must_be_held(tmp_path):
    study = load_study(STUDIES / "cluster_trial.py")
    with pytest.raises(ValueError, match="factor 'group_size' has 2 levels"):
        held_factors(study, PowerSearch("n_groups", 0.8, "lmm_t", "treat", 4, 40))
    held = held_factors(study, PowerSearch("n_groups", 0.8, "lmm_t", "treat", 4, 40,
                                           fixed={"group_size": 20, "icc": 0.05}))
    assert held == {"group_size": 20, "icc": 0.05, "treatment_effect": 0.3}
    with pytest.raises(ValueError, match="not taken by"):
        held_factors(study, PowerSearch("clusters", 0.8, "lmm_t", "treat", 4, 40))


def test_unknown_parameter_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="reports no parameter 'slope'"):
        search(tmp_path, param="slope")


@pytest.mark.slow
def test_killed_search_resumes_to_the_same_answer_from_the_same_evidence(tmp_path):
    args = [sys.executable, "-m", "simstudy.cli", "power", str(TOY), "--factor", "n", "--target", "0.8",
            "--estimator", "z", "--param", "mean", "--range", "2:60", "--jobs", "1", "--out", str(tmp_path / "k")]
    full = subprocess.run([*args[:-1], str(tmp_path / "full")], capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.time() + 120
    while time.time() < end and len(list((tmp_path / "k" / "chunks").glob("*.parquet"))) < 6:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    answer = [line for line in again.stdout.splitlines() if line.startswith("smallest")]
    assert answer and answer == [line for line in full.stdout.splitlines() if line.startswith("smallest")]
    a, b = read_netcdf(tmp_path / "k" / "estimates.nc"), read_netcdf(tmp_path / "full" / "estimates.nc")
    np.testing.assert_array_equal(a["estimate"].values, b["estimate"].values)
    assert os.path.exists(tmp_path / "k" / "search.json")
