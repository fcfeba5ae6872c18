"""Script: sentryCam against DVI and UMAP (warm-started and independent) on the same checkpoints.

The code is ``sentrycam_widget.benchmarking.compare``; this script writes to benchmarks/results/
unless ``--out`` says otherwise (``--help`` lists the options).
"""

import sys
from pathlib import Path

from sentrycam_widget.benchmarking.compare import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], results=Path(__file__).resolve().parent / "results"))
