"""Script: sentryCam vs umap-learn: per-checkpoint latency, faithfulness and time to first frame.

The code is ``sentrycam_widget.benchmarking.latency``; this script writes to benchmarks/results/
unless ``--out`` says otherwise (``--help`` lists the options).
"""

import sys
from pathlib import Path

from sentrycam_widget.benchmarking.latency import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], results=Path(__file__).resolve().parent / "results"))
