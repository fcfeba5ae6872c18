"""Training-framework integrations: Lightning and Hugging Face callbacks, DDP-safe recording.

- :mod:`sentrycam_widget.integrations.distributed`: :class:`DistributedMonitor`, a monitor on
  rank 0 only (other ranks no-op) for plain ``torchrun`` / DDP loops; the callbacks build on it.
- :mod:`sentrycam_widget.integrations.lightning`: ``SentryCamCallback`` for a Lightning
  ``Trainer`` (extra ``sentrycam-widget[lightning]``).
- :mod:`sentrycam_widget.integrations.transformers`: ``SentryCamTrainerCallback`` for a
  Hugging Face ``Trainer`` (extra ``sentrycam-widget[transformers]``).

The framework modules import their framework, so import them by name; this package itself
imports nothing heavy.
"""

from __future__ import annotations

__all__: list[str] = []
