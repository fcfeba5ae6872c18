"""Benchmarks and case studies shipped with the package: what ``sentrycam bench`` runs.

- :mod:`.compare`: SentryCam against DVI and UMAP on the same checkpoints (``sentrycam bench``);
- :mod:`.latency`: per-checkpoint latency and time to first frame against umap-learn;
- :mod:`.case_studies` / :mod:`.case_report`: the training-audit case studies and their tables
  (the notebooks 03-05 call them).

The scripts in the checkout's ``benchmarks/`` folder are thin wrappers around these modules.
"""
