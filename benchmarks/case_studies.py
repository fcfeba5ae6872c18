"""Script: case studies of the training audit (issue 5): instability, healthy runs, continual learning.

The code is ``sentrycam_widget.benchmarking.case_studies``; this script writes to benchmarks/results/
unless ``--out`` says otherwise (``--help`` lists the options).
"""

import sys
from pathlib import Path

from sentrycam_widget.benchmarking.case_studies import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], results=Path(__file__).resolve().parent / "results"))
