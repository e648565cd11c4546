"""Peak memory of the same small study at 1,000 and 10,000 replicates per cell.

Each run is a separate process (``simstudy run``); its peak resident set size (the parent's: the workers
hold one chunk at a time) comes from ``resource.getrusage``. Memory should stay nearly flat: nothing per
replicate accumulates in the parent beyond the final datasets.

Run: ``.venv/bin/python benchmarks/bench_memory.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

STUDY = textwrap.dedent('''
    from simstudy.design import Design
    from simstudy.dgp.clustered import RandomIntercept
    from simstudy.estimators import OLS
    from simstudy.study import Study
    study = Study(name="mem", design=Design({"n_groups": [10, 20], "group_size": [5]}), dgp=RandomIntercept(),
                  estimators={"ols": OLS("y ~ x + treat"), "cr": OLS("y ~ x + treat", groups="group")},
                  reps=1000, seed=1)
''')

PROBE = textwrap.dedent('''
    import resource, sys
    from pathlib import Path
    from simstudy.engine.runner import RunConfig, run_study
    from simstudy.study import load_study
    run_study(load_study(sys.argv[1]), RunConfig(reps=int(sys.argv[2]), out=Path(sys.argv[3]), jobs=2, quiet=True))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
''')


def peak_kib(study: Path, reps: int, out: Path) -> int:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(study), str(reps), str(out)], capture_output=True,
                          text=True, check=True)
    return int(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "mem.py"
        study.write_text(STUDY)
        small = peak_kib(study, 1000, Path(tmp) / "a")
        big = peak_kib(study, 10000, Path(tmp) / "b")
    print(f"peak RSS of the parent: 1,000 reps {small / 1024:.1f} MiB, 10,000 reps {big / 1024:.1f} MiB, "
          f"ratio {big / small:.2f}")


if __name__ == "__main__":
    main()
