"""The digits CNN run shared by the projector tests: trained once per test session.

Uses the demo's real training pieces (sklearn's bundled digits, the small CNN, Adam) and the
real recorder, so the projectors see genuine penultimate representations and heads.
"""

from __future__ import annotations

import functools

from sentrycam_widget import demo
from sentrycam_widget.capture import Recorder
from sentrycam_widget.probe import ProbeSet
from sentrycam_widget.records import Checkpoint


@functools.cache
def digits_checkpoints(epochs: int = 4, seed: int = 0) -> tuple[Checkpoint, ...]:
    """Checkpoints after each of the first ``epochs`` epochs on the 1,797-image probe set."""
    data = demo.digits_data(seed)
    model = demo.make_model(seed, demo.DigitsCNN)
    optimizer = demo.make_optimizer(model)
    recorder = Recorder(model, ProbeSet(data.x_probe, data.y_probe.numpy()))
    checkpoints = []
    for epoch in range(1, epochs + 1):
        demo.train_epoch(model, optimizer, data.x_train, data.y_train, seed=seed + epoch)
        checkpoints.append(recorder.capture(index=epoch - 1, epoch=epoch))
    return tuple(checkpoints)
