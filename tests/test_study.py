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


def test_estimands_must_match_parameters():
    study = load_study(TOY)
    study.check_estimands({"mean": ("mean",), "boom": ("mean",)}, {"mean": 0.0})
    with pytest.raises(ValueError, match="true values that match no estimator's parameter: 'slope_x'"):
        study.check_estimands({"mean": ("mean", "x")}, {"mean": 0.0, "slope_x": 1.0, "x": 1.0})
    with pytest.raises(ValueError, match=re.escape("parameters without a true value: 'x' (mean)")):
        study.check_estimands({"mean": ("mean", "x")}, {"mean": 0.0})


def test_unscored_names_are_exempt_from_matching():
    study = load_study(TOY)
    study = Study(name="x", design=study.design, dgp=study.dgp, estimators=study.estimators,
                  unscored=("x", "treat"))
    study.check_estimands({"mean": ("mean", "x")}, {"mean": 0.0, "treat": 0.0})
    with pytest.raises(ValueError, match="unscored must be a sequence"):
        Study(name="x", design=study.design, dgp=study.dgp, estimators=study.estimators, unscored="x")


def test_reference_defaults_to_the_first_estimator():
    study = load_study(TOY)
    assert study.reference == "mean"
    assert Study(name="x", design=study.design, dgp=study.dgp, estimators=study.estimators,
                 reference="boom").reference == "boom"
