"""Study objects and study files: every way a study can be wrong is one clear ValueError."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simstudy.design import Design
from simstudy.study import Study, load_study

TOY = Path(__file__).with_name("toy_study.py")


def test_load_toy_study():
    study = load_study(TOY)
    assert study.name == "toy" and list(study.estimators) == ["mean", "boom"]
    assert study.truth_for({"n": 10, "mu": 1.0, "sd": 1.0}) == {"mean": 1.0}


def test_validate_unknown_factor_and_bad_value():
    study = load_study(TOY)
    bad = Study(name="x", design=Design({"nn": [3]}), dgp=study.dgp, estimators=study.estimators)
    with pytest.raises(ValueError, match="factor 'nn' is not taken by Toy.generate"):
        bad.validate()
    bad = Study(name="x", design=Design({"n": [1, 3]}), dgp=study.dgp, estimators=study.estimators)
    with pytest.raises(ValueError, match="factor 'n' must be at least 2, got 1"):
        bad.validate()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a b"}, "study name"),
        ({"reps": 0}, "reps must be"),
        ({"reps": 2.5}, "reps must be"),
        ({"seed": -1}, "seed must be"),
        ({"estimators": {}}, "non-empty mapping"),
        ({"dgp": object()}, "no generate"),
    ],
)
def test_bad_study(kwargs, message):
    study = load_study(TOY)
    args = {"name": "x", "design": study.design, "dgp": study.dgp, "estimators": study.estimators} | kwargs
    with pytest.raises(ValueError, match=message):
        Study(**args)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("study = (\n", "syntax error in"),
        ("import nonexistent_module_xyz\n", "failed: ModuleNotFoundError"),
        ("x = 1\n", "must define `study = Study(...)`"),
    ],
)
def test_bad_study_files(tmp_path, text, message):
    path = tmp_path / "s.py"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_study(path)


def test_missing_study_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_study(tmp_path / "nope.py")


def _with_truth(truth, **kwargs):
    toy = load_study(TOY)
    return Study(name="x", design=toy.design, dgp=toy.dgp, estimators=toy.estimators,
                 truth=lambda **cell: truth, **kwargs)


def test_estimands_must_match_parameters():
    _with_truth({"mean": 0.0}).check_estimands({"mean": ("mean",), "boom": ("mean",)}, {})
    with pytest.raises(ValueError, match="true values that match no estimator's parameter: 'slope_x'"):
        _with_truth({"mean": 0.0, "slope_x": 1.0, "x": 1.0}).check_estimands({"mean": ("mean", "x")}, {})
    with pytest.raises(ValueError, match=re.escape("parameters without a true value: 'x' (mean)")):
        _with_truth({"mean": 0.0}).check_estimands({"mean": ("mean", "x")}, {})


def test_unscored_names_are_exempt_from_matching():
    study = _with_truth({"mean": 0.0, "treat": 0.0}, unscored=("x", "treat"))
    study.check_estimands({"mean": ("mean", "x")}, {})
    with pytest.raises(ValueError, match="unscored must be a sequence"):
        _with_truth({"mean": 0.0}, unscored="x")


def test_truth_may_depend_on_the_estimator():
    def study(truth):
        s = _with_truth(truth)
        s.estimators["boom"].estimand = "marginal"
        return s

    assert study({"mean": {"marginal": 0.4, "mean": 0.5}}).truths({}) == {"mean": {"mean": 0.5},
                                                                          "boom": {"mean": 0.4}}
    study({"mean": {"marginal": 0.4, "mean": 0.5}}).check_estimands({"mean": ("mean",), "boom": ("mean",)}, {})
    with pytest.raises(ValueError, match=re.escape("key names no estimator or estimand: mean['conditionl']")):
        study({"mean": {"conditionl": 0.4, "mean": 0.5, "marginal": 0.4}}).check_estimands(
            {"mean": ("mean",), "boom": ("mean",)}, {})
    with pytest.raises(ValueError, match=re.escape("parameters without a true value: 'mean' (boom)")):
        study({"mean": {"mean": 0.5}}).check_estimands({"mean": ("mean",), "boom": ("mean",)}, {})


def test_reference_defaults_to_the_first_estimator():
    study = load_study(TOY)
    assert study.reference == "mean"
    assert Study(name="x", design=study.design, dgp=study.dgp, estimators=study.estimators,
                 reference="boom").reference == "boom"


def test_labels_a_dgp_declares_are_not_strays():
    study = _with_truth({"mean": {"conditional": 0.5, "marginal": 0.4, "mean": 0.5, "boom": 0.5}})
    with pytest.raises(ValueError, match="names no estimator or estimand"):
        study.check_estimands({"mean": ("mean",), "boom": ("mean",)}, {})
    study.dgp.estimands = ("conditional", "marginal")  # a DGP that offers several estimands
    study.check_estimands({"mean": ("mean",), "boom": ("mean",)}, {})
