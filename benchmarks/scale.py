"""Script: the engine at scale — SentryCam vs umap-learn warm-started (unseeded and seeded).

Record the workloads first (``python benchmarks/workloads.py RUNS_DIR``), then
``python benchmarks/scale.py RUNS_DIR/mnist1d RUNS_DIR/mlp50k``. The code is
``sentrycam_widget.benchmarking.scale``; results go to benchmarks/results/ unless ``--out``.
"""

import sys
from pathlib import Path

from sentrycam_widget.benchmarking.scale import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--out" not in argv:
        argv += ["--out", str(Path(__file__).resolve().parent / "results")]
    sys.exit(main(argv))
