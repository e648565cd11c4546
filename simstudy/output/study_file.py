"""Write a study file from a pilot fit: the fitted values as numbers, a default grid and estimators.

What ``simstudy pilot DATA ... --out studies/NAME.py`` writes (:func:`write_study_file`): a study file that
reads the pilot's covariates and structure from the data file (checked against the digest of the data that
were fitted), takes the fitted fixed effects and variance components from numbers written in the file (its
truths; edit them to plan for other values), simulates with :class:`simstudy.dgp.PilotModel` and compares
naive OLS, cluster-robust OLS and the mixed model with between-within t intervals over a grid of 1, 2, 3
and 4 times the pilot's clusters and (with a treatment) an effect of 0 and one to detect.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simstudy.estimators.pilot_fit import PilotFit

#: Multiples of the pilot's number of clusters in the default grid.
MULTIPLES = (1, 2, 3, 4)
#: The default effect to detect, in outcome standard deviations (the SD of one row around the fixed effects).
STANDARD_EFFECT = 0.3


def outcome_sd(pilot: PilotFit, values: dict[str, float] | None = None) -> float:
    """SD of one row around its fixed part: random effects and residual (averaged over the pilot's rows with
    a random slope)."""
    v = pilot.variances if values is None else values
    total = sum(val for name, val in v.items() if name.startswith("var(") and ":" not in name)
    if pilot.slope is not None:
        g, x = pilot.groups[0], np.asarray(pilot.rows[pilot.slope], float)
        total += float(np.mean(2 * v[f"cov({g}:{pilot.slope})"] * x + v[f"var({g}:{pilot.slope})"] * x**2))
    return math.sqrt(total)


def default_effect(pilot: PilotFit, treatment_by: str | None = None) -> float:
    """:data:`STANDARD_EFFECT` outcome SDs (per SD of ``treatment_by`` for an effect on its slope), to two
    significant digits."""
    d = STANDARD_EFFECT * outcome_sd(pilot)
    if treatment_by is not None:
        d /= float(np.std(np.asarray(pilot.rows[treatment_by], float))) or 1.0
    return float(f"{d:.2g}")


def study_file_text(pilot: PilotFit, *, data: str | Path, out: str | Path, name: str,
                    treatment_level: str | None = None, treatment_by: str | None = None,
                    effect_of: str | None = None, effects: Sequence[float] | None = None,
                    clusters: Sequence[int] | None = None, cluster_sizes: Sequence[int] | None = None,
                    subcluster_sizes: Sequence[int] | None = None, resample: str = "clusters",
                    random_effects: str = "new", keep_pilot: bool | None = None, reps: int = 1000,
                    seed: int | None = None, date: str | None = None) -> str:
    """The text of the study file (see :func:`write_study_file` for the parameters)."""
    from simstudy import __version__

    g = pilot.groups
    C = pilot.n_clusters
    grid_line = (f"n_clusters at {', '.join(map(str, MULTIPLES))} times the pilot's {C} {g[0]}" if not clusters
                 else f"n_clusters {', '.join(map(str, clusters))} (the pilot has {C} {g[0]})")
    clusters = list(clusters) if clusters else [k * C for k in MULTIPLES]
    term = None
    if treatment_level is not None:
        term = f"treat:{treatment_by}" if treatment_by else "treat"
        effects = list(effects) if effects else [0.0, default_effect(pilot, treatment_by)]
    elif effect_of is not None:
        term = effect_of
        effects = list(effects) if effects else [pilot.fixed[effect_of]]
    elif effects:
        raise ValueError("effects need a treatment_level or effect_of")
    grid: dict[str, list[Any]] = {"n_clusters": [int(c) for c in clusters]}
    for key, levels in (("cluster_size", cluster_sizes), ("subcluster_size", subcluster_sizes)):
        if levels:
            grid[key] = [int(v) for v in levels]
    if effects:
        grid["effect"] = [float(e) for e in effects]
    formula = pilot.formula + ("" if treatment_level is None else
                               " + treat" + (f" + treat:{treatment_by}" if treatment_by else ""))
    groups_arg = _literal(g[0]) if len(g) == 1 else _literal(list(g))
    slope_arg = f", slope={_literal(pilot.slope)}" if pilot.slope else ""
    dgp_opts = [f"resample={_literal(resample)}", f"random_effects={_literal(random_effects)}"]
    if keep_pilot is not None:
        dgp_opts.append(f"keep_pilot={bool(keep_pilot)!r}")
    for key, value in (("treatment_level", treatment_level), ("treatment_by", treatment_by), ("effect_of", effect_of)):
        if value is not None:
            dgp_opts.append(f"{key}={_literal(value)}")
    src = pilot.source
    seed = int(src["data_sha256"][:7], 16) if seed is None else int(seed)
    date = date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    data_abs, folder = Path(data).resolve(), Path(out).resolve().parent
    common = Path(os.path.commonpath([data_abs, folder])) if data_abs.anchor == folder.anchor else None
    where = (f"Path(__file__).resolve().parent / {_literal(Path(os.path.relpath(data_abs, folder)).as_posix())}"
             if common is not None and common != Path(common.anchor) else f"Path({_literal(data_abs.as_posix())})")
    show = [term] if term else [n for n in pilot.fixed if n != "Intercept"] or list(pilot.fixed)
    re_text = (f"random intercept and slope of {pilot.slope} by {g[0]}" if pilot.slope else
               f"random intercepts for {g[0]}" + (f" and {g[1]} within {g[0]}" if len(g) == 2 else ""))
    provenance = {"file": src.get("file"), "file_sha256": src.get("file_sha256"), "data_sha256": src["data_sha256"],
                  "rows": src["rows"], "rows_used": src["rows_used"], "formula": pilot.formula, "groups": list(g),
                  "slope": pilot.slope, "nested_ids": pilot.nested_ids, "reml": pilot.reml,
                  "fit": f"FastMixedLM {'REML' if pilot.reml else 'ML'}: {pilot.status}"
                         + (f" ({pilot.message})" if pilot.message else ""),
                  "criterion": src.get("criterion"), "date": date, "simstudy": __version__}
    labels = {"n_clusters": f"{g[0]} (clusters)", "ols": "OLS (naive)", "ols_cr": f"OLS, cluster-robust by {g[0]}",
              "lmm": "LMM, between-within t"}
    if "effect" in grid:
        labels["effect"] = f"Effect ({term})"
    description = {
        "aims": f"Power for {term or 'the fixed effects'} with more clusters than the pilot's {C}.",
        "data": f"Resampled from the pilot ({src.get('file') or 'data'}: {C} {g[0]}), covariates by {resample}, "
                f"{random_effects} random effects; fixed effects and variances as fitted (FIXED, VARIANCES).",
        "estimands": ", ".join(show) + " (and every fixed effect and variance component).",
        "methods": "OLS naive; OLS cluster-robust (CR1, t with G-1 df); LMM REML, between-within t.",
        "performance": "power (type I error at effect 0), coverage, bias.",
    }
    ses = ", ".join(f"{k} {v:.3g}" for k, v in pilot.fixed_se.items() if np.isfinite(v))
    effect_line = ""
    if term and treatment_level is not None:
        effect_line = (f"Effect: {term} = 0 (type I error) and the effect to detect (default "
                       f"{STANDARD_EFFECT} outcome SDs{' per SD of ' + treatment_by if treatment_by else ''}); "
                       "edit the levels.\n")
    power_cmd = "    " + power_command(out, grid, term) if term else ""
    lines = [
        f'"""Planning from a pilot: {pilot.formula}, {re_text}, fitted to {src.get("file") or "data"}.',
        "",
        f"Written by `simstudy pilot` ({date}, simstudy {__version__}) for you to edit and run:",
        "",
        f"    simstudy run {Path(out).as_posix()}",
        power_cmd.rstrip("\n"),
        "",
        "FIXED and VARIANCES are the pilot's fitted values (the study's truths); edit them to plan for other",
        "values. The covariates and the cluster structure are read from the pilot file (refused if its data",
        f"changed). Grid: {grid_line}.",
        effect_line.rstrip("\n"),
        "Simulation: simstudy.dgp.PilotModel (its docstring says how clusters, sizes, covariates, random effects",
        "and the treatment are drawn).",
        '"""',
        "",
        "from pathlib import Path",
        "",
        "from simstudy.design import Design",
        "from simstudy.dgp.pilot import PilotModel",
        "from simstudy.estimators import OLS, MixedLM",
        "from simstudy.estimators.pilot_fit import load_pilot",
        "from simstudy.study import Study",
        "",
        f"PILOT_FILE = {where}",
        "PROVENANCE = " + _mapping(provenance),
        f"# the pilot's standard errors: {ses}" if ses else "# values given, not fitted: no standard errors",
        "FIXED = " + _mapping(pilot.fixed),
        "VARIANCES = " + _mapping(pilot.variances),
        "",
        "pilot = load_pilot(PILOT_FILE, PROVENANCE[\"formula\"], PROVENANCE[\"groups\"], slope=PROVENANCE[\"slope\"],",
        "                   nested_ids=PROVENANCE[\"nested_ids\"], reml=PROVENANCE[\"reml\"], fixed=FIXED,",
        "                   variances=VARIANCES, data_sha256=PROVENANCE[\"data_sha256\"])",
        f"dgp = PilotModel(pilot, {', '.join(dgp_opts)})",
        "",
        f"FORMULA = {_literal(formula)}",
        "study = Study(",
        f"    name={_literal(name)},",
        f"    design=Design({_literal(grid)}),",
        "    dgp=dgp,",
        "    estimators={",
        "        \"ols\": OLS(FORMULA),",
        f"        \"ols_cr\": OLS(FORMULA, groups={_literal(g[0])}),",
        f"        \"lmm\": MixedLM(FORMULA, groups={groups_arg}{slope_arg}, df_method=\"between-within\"),",
        "    },",
        f"    reps={int(reps)},",
        f"    seed={seed},",
        f"    show={_literal(tuple(show))},",
        "    labels=" + _mapping(labels, 4) + ",",
        "    description=" + _mapping(description, 4) + ",",
        ")",
        "",
    ]
    return "\n".join(line for line in lines if line is not None)


def power_command(out: str | Path, grid: dict[str, list[Any]], term: str) -> str:
    """The ``simstudy power`` command that searches ``n_clusters`` of the study file ``out`` for ``term``, other
    factors of several levels held at their last level (the effect to detect)."""
    held = " ".join(f"{k}={v[-1]!r}" for k, v in grid.items() if k != "n_clusters" and len(v) > 1)
    return (f"simstudy power {Path(out).as_posix()} --factor n_clusters --estimator lmm --param {term}"
            + (f" --set {held}" if held else ""))


def _mapping(d: dict[str, Any], indent: int = 0) -> str:
    pad = " " * indent
    body = "".join(f"{pad}    {_literal(k)}: {_literal(v)},\n" for k, v in d.items())
    return "{\n" + body + pad + "}"


def _literal(v: Any) -> str:
    """Python source for a value, strings in double quotes, floats exactly (``repr`` round-trips)."""
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else f'float("{v}")'
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_literal(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(x)}" for k, x in v.items()) + "}"
    return repr(v)


def write_study_file(pilot: PilotFit, out: str | Path, *, data: str | Path, name: str | None = None,
                     force: bool = False, **options: Any) -> Path:
    """Write a ready study file for ``pilot`` to ``out`` and check that it loads.

    Parameters
    ----------
    pilot : PilotFit
        The fit (:func:`~simstudy.estimators.pilot_fit.fit_pilot` of the file ``data``).
    out : path
        The study file to write (``studies/NAME.py``); an existing file is kept unless ``force``.
    data : path
        The pilot file; the study file names it relative to its own folder.
    name : str, optional
        The study's name (default: ``out``'s stem).
    force : bool
        Overwrite ``out``.
    **options
        ``treatment_level``, ``treatment_by``, ``effect_of``, ``resample``, ``random_effects``,
        ``keep_pilot`` (as :class:`simstudy.dgp.PilotModel`); ``effects``, ``clusters``, ``cluster_sizes``,
        ``subcluster_sizes`` (levels of the grid; default clusters 1-4 times the pilot's, effects 0 and
        :func:`default_effect`); ``reps`` (default 1000), ``seed`` (default from the data's digest), ``date``.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ValueError
        One line: ``out`` exists, a bad name or option, or the written file does not load (then removed).
    """
    from simstudy.dgp.pilot import PilotModel
    from simstudy.study import load_study

    out = Path(out)
    if out.suffix != ".py":
        raise ValueError(f"the study file must end in .py, got {str(out)!r}")
    if out.exists() and not force:
        raise ValueError(f"{str(out)!r} exists; pass --force (force=True) to overwrite it")
    name = name or re.sub(r"[^A-Za-z0-9_-]", "_", out.stem)
    dgp_keys = ("treatment_level", "treatment_by", "effect_of", "resample", "random_effects", "keep_pilot")
    PilotModel(pilot, **{k: options[k] for k in dgp_keys if options.get(k) is not None})  # one-line errors first
    text = study_file_text(pilot, data=data, out=out, name=name, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    try:
        study = load_study(out)
        study.validate()
    except ValueError:
        out.unlink()
        raise
    return out
