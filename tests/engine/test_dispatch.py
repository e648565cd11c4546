"""Dispatching tasks: streaming, skipping stopped cells, failed chunks, how many workers, and stopping
(every result that has arrived is handed out before the run stops)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from simstudy.engine.chunk import Task
from simstudy.engine.cluster import cap_jobs
from simstudy.engine.dispatch import BEATS, arrived, execute, failed_chunk, sweep_beats
from simstudy.engine.progress import Interrupted, StopRequest
from simstudy.study import load_study
from support import SLOW, TOY


@pytest.mark.parametrize(("jobs", "in_process", "fork"),
                         [(1, False, False), (2, False, False), (1, False, True), (2, False, True), (1, True, False)])
def test_all_tasks_return_and_skip_is_asked_at_dispatch(jobs, in_process, fork):
    study = load_study(TOY)
    tasks = [Task(i, {"n": 10, "mu": 0.0}, s, s + 5, 1) for i in range(2) for s in (1, 6, 11)]
    results = list(execute(study, tasks, jobs, in_process=in_process, fork=fork,
                           skip=lambda t: t.cell_index == 1 and t.start > 1))
    assert sorted((r.cell_index, r.start) for r in results) == [(0, 1), (0, 6), (0, 11), (1, 1)]


def test_forked_loky_and_in_process_workers_give_the_same_bits():
    study = load_study(TOY)
    tasks = [Task(i, {"n": 10, "mu": 0.0}, s, s + 5, 7) for i in range(2) for s in (1, 6)]
    runs = [sorted(execute(study, tasks, jobs, in_process=inp, fork=fork), key=lambda r: (r.cell_index, r.start))
            for jobs, inp, fork in ((2, False, True), (2, False, False), (1, True, False))]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            for v in a.values:
                np.testing.assert_array_equal(a.values[v], b.values[v], err_msg=v)
            np.testing.assert_array_equal(a.status, b.status)
            np.testing.assert_array_equal(a.message, b.message)


def test_failed_chunk_shape():
    c = failed_chunk(Task(0, {}, 3, 6, 0), ["a", "b"], "worker died")
    assert c.n == 3 and c.status.shape == (3, 2) and (c.status == 3).all()
    assert c.params == () and c.values["estimate"].shape == (3, 2, 0)
    assert np.all(c.message == "worker died")


def test_jobs_are_capped_at_usable_cores_and_tasks():
    assert cap_jobs(1000, 80, cores=2) == (2, "2 CPU cores usable")
    assert cap_jobs(8, 3, cores=16) == (3, "3 tasks to run")
    assert cap_jobs(4, 1, cores=1) == (1, "1 task to run")
    assert cap_jobs(2, 10, cores=4) == (2, "")


def test_bad_arguments_are_refused_before_anything_runs():
    study = load_study(TOY)
    with pytest.raises(ValueError, match="retries must be 0 or more"):
        execute(study, [], 1, retries=-1)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        execute(study, [], 1, timeout=0)
    with pytest.raises(ValueError, match="--timeout does not work with --backend dask"):
        execute(study, [], 1, backend="dask", client=object(), timeout=5)


@pytest.fixture
def sleepy_study(monkeypatch):
    monkeypatch.setenv("SIMSTUDY_TEST_SLEEP", "0.05")  # read when the study file is loaded
    return load_study(SLOW)


THREE = [Task(0, {"n": 10, "mu": 0.0}, s, s + 4, 1) for s in (1, 5, 9)]  # ~0.2 s each


@pytest.mark.parametrize("fork", [False, True])
def test_what_has_arrived_is_handed_out_when_the_consumer_is_interrupted(sleepy_study, fork):
    # defect: joblib dropped the results it held ("11 tasks have been successfully executed but not used")
    results = execute(sleepy_study, THREE, 2, fork=fork)
    first = next(results)
    time.sleep(3)  # the two other tasks (in flight, two workers) finish meanwhile
    rest = list(arrived(results, KeyboardInterrupt()))
    assert sorted(r.start for r in [first, *rest]) == [1, 5, 9]


@pytest.mark.parametrize("fork", [False, True])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_run_after_the_results_that_have_arrived(sleepy_study, signum, fork):
    got, before = [], signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        results = execute(sleepy_study, THREE, 2, stop=stop, fork=fork)
        with pytest.raises(Interrupted) as info:
            for result in results:
                got.append(result.start)
                if len(got) == 1:
                    os.kill(os.getpid(), signum)  # noted, not raised: this loop goes on
                    time.sleep(3)
    assert info.value.signum == signum and info.value.exit_code == 128 + signum
    assert sorted(got) == [1, 5, 9]
    assert signal.getsignal(signal.SIGINT) is before


def test_interrupted_says_what_was_saved():
    assert Interrupted(signal.SIGINT).message() == "simstudy: interrupted"
    text = Interrupted(signal.SIGTERM, 40, "`simstudy resume d` continues").message()
    assert text == "simstudy: terminated; 40 replicates saved, `simstudy resume d` continues"


IN_MEMORY = '''
import numpy as np
from simstudy import Fit


class D:
    def generate(self, rng, n=5):
        return {"y": rng.normal(size=n)}

    def truth(self, n=5):
        return {"m": 0.0}


class E:
    def fit(self, data):
        v = np.array([data["y"].mean()])
        return Fit(("m",), v, v * 0 + 1, v - 2, v + 2, v * np.nan)
'''


@pytest.fixture
def in_memory_study(monkeypatch):
    """A study whose classes live in a module made in memory (registered, but no worker can import it)."""
    import cloudpickle

    from simstudy.design import Design
    from simstudy.study import Study

    module = types.ModuleType("simstudy_test_in_memory")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(IN_MEMORY, module.__dict__)  # noqa: S102
    yield Study(name="m", design=Design({"n": [5]}), dgp=module.D(), estimators={"e": module.E()}, reps=4)
    if module.__name__ in cloudpickle.list_registry_pickle_by_value():
        cloudpickle.unregister_pickle_by_value(module)


@pytest.mark.parametrize("fork", [False, True])
def test_classes_of_a_module_made_in_memory_reach_the_workers(in_memory_study, fork):
    # defect: they were sent by reference; every task then "killed its worker" (BrokenProcessPool)
    results = list(execute(in_memory_study, [Task(0, {"n": 5}, 1, 5, 1)], 1, fork=fork))
    assert (results[0].status == 0).all()


def test_a_study_loky_workers_cannot_read_is_one_clear_error(in_memory_study, monkeypatch):
    import simstudy.engine.dispatch as dispatch

    monkeypatch.setattr(dispatch, "_send_in_memory_modules_by_value", lambda: None)
    with pytest.raises(ValueError, match=r"cannot be sent to the worker processes \(ModuleNotFoundError: No module "
                                         r"named 'simstudy_test_in_memory'\)"):
        list(execute(in_memory_study, [Task(0, {"n": 5}, 1, 5, 1)], 1, fork=False))
    # forked workers hold the study already: nothing is sent, so it runs
    results = list(execute(in_memory_study, [Task(0, {"n": 5}, 1, 5, 1)], 1, fork=True))
    assert (results[0].status == 0).all()


def test_heartbeat_directories_of_dead_runs_are_swept(tmp_path):
    # defect: a run killed with SIGKILL left its /tmp/simstudy-beats-* directory behind, forever
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    gone = tmp_path / f"{BEATS}{int(dead.stdout)}-abc"
    alive = tmp_path / f"{BEATS}{os.getpid()}-def"
    other = tmp_path / f"{BEATS}xyz"  # not one of ours: left alone
    for d in (gone, alive, other):
        d.mkdir()
        (d / "1").write_text("beat")
    sweep_beats(str(tmp_path))
    assert not gone.exists() and alive.exists() and other.exists()
