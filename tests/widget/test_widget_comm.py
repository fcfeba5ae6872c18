"""What the widget sends, from which thread, and in what shape (recording comm, no kernel)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from widget_synthetic import synthetic_checkpoint, synthetic_frame

from sentrycam_widget.errors import InputError
from sentrycam_widget.render import palette
from sentrycam_widget.widget import (
    SentryCamWidget,
    bokeh_js,
    checkpoint_payload,
    frame_payload,
    shared_bokeh,
)

N = 120
LABELS = np.arange(N) % 3


def _updates(log, comm_id):
    return [m for m in log if m["comm_id"] == comm_id and m["data"].get("method") == "update"]


def _opens(log, exclude):
    return [m for m in log if m["type"] == "comm_open" and m["comm_id"] != exclude]


def test_probe_is_sent_once_as_binary_with_the_shared_palette(wire):
    thumbs = np.zeros((N, 8, 8), np.uint8)
    widget = SentryCamWidget(LABELS, {"sentrycam": True}, thumbnails=thumbs)
    opening = next(
        m for m in wire if m["type"] == "comm_open" and m["comm_id"] == widget.comm.comm_id
    )
    paths = opening["data"]["buffer_paths"]
    assert ["probe", "labels", "buffer"] in paths
    assert ["probe", "thumbnails", "buffer"] in paths
    by_path = dict(zip(map(tuple, paths), opening["buffers"], strict=True))
    assert np.array_equal(np.frombuffer(by_path[("probe", "labels", "buffer")], np.uint16), LABELS)
    assert by_path[("probe", "palette", "buffer")] == palette(3).tobytes()
    state = opening["data"]["state"]
    assert state["inverse"] == {"sentrycam": True}


def _bytes(message) -> int:
    return len(json.dumps(message["data"])) + sum(len(b) for b in message["buffers"])


def test_bokehjs_is_sent_once_however_many_widgets_are_shown(wire):
    shared_bokeh().close()  # a fresh kernel: nothing sent yet
    widgets = [SentryCamWidget(LABELS, {"sentrycam": True}) for _ in range(3)]
    refs = {w.get_state()["_bokeh"] for w in widgets}
    assert len(refs) == 1
    carrying = [m for m in wire if (m["data"].get("state") or {}).get("source") == bokeh_js()]
    assert len(carrying) == 1
    assert carrying[0]["comm_id"] == refs.pop().removeprefix("anywidget:")
    assert "cdn" not in bokeh_js()[:2000].lower()
    # the page weight of three widgets is one BokehJS plus three small states
    total = sum(_bytes(m) for m in wire)
    assert total < _bytes(carrying[0]) + 3 * 100_000
    widgets[0]._bokeh.close()
    assert SentryCamWidget(LABELS, {"sentrycam": True})._bokeh.comm is not None


def test_frame_from_worker_thread_is_one_binary_child_plus_one_small_update(wire):
    widget = SentryCamWidget(LABELS, {"sentrycam": True})
    checkpoint = synthetic_checkpoint(0, LABELS)
    frame = synthetic_frame("sentrycam", 0, N)
    wire.clear()

    def work():
        widget.add_checkpoint(checkpoint, {"queued": 0})
        widget.add_frame(frame, {"queued": 0, "projecting": None})

    worker = threading.Thread(target=work, name="sentrycam-worker")
    worker.start()
    worker.join()
    assert {m["thread"] for m in wire} == {"sentrycam-worker"}
    children = _opens(wire, widget.comm.comm_id)
    assert len(children) == 2
    frame_open = children[1]
    paths = [tuple(p) for p in frame_open["data"]["buffer_paths"]]
    buffers = dict(zip(paths, frame_open["buffers"], strict=True))
    xy = np.frombuffer(buffers[("data", "xy", "buffer")], np.float32).reshape(N, 2)
    assert np.array_equal(xy, frame.embedding)
    classes = np.frombuffer(buffers[("data", "background", "classes", "buffer")], np.uint8)
    assert np.array_equal(classes.reshape(20, 20), frame.background.classes)
    assert len(buffers[("data", "background", "alpha", "buffer")]) == 400
    ckpt_buffers = dict(
        zip(map(tuple, children[0]["data"]["buffer_paths"]), children[0]["buffers"], strict=True)
    )
    pred = np.frombuffer(ckpt_buffers[("data", "pred", "buffer")], np.uint16)
    assert np.array_equal(pred, checkpoint.predictions)
    # one coherent update per frame: the reference list and the status in a single message
    updates = _updates(wire, widget.comm.comm_id)
    assert len(updates) == 2
    assert set(updates[1]["data"]["state"]) == {"frames", "status"}
    assert updates[1]["data"]["state"]["frames"] == [f"anywidget:{frame_open['comm_id']}"]
    assert updates[1]["buffers"] == []


def test_bytes_per_frame_do_not_grow_with_the_run(wire):
    widget = SentryCamWidget(LABELS, {"sentrycam": True})
    sizes = []
    for i in range(6):
        wire.clear()
        widget.add_frame(synthetic_frame("sentrycam", i, N))
        sizes.append(sum(len(b) for m in wire for b in m["buffers"]))
        update = _updates(wire, widget.comm.comm_id)[0]
        assert len(update["data"]["state"]["frames"]) == i + 1
    assert len(set(sizes)) == 1
    assert sizes[0] == N * 8 + 2 * 400


def test_method_without_inverse_sends_no_background(wire):
    widget = SentryCamWidget(LABELS, {"sentrycam": True, "umap": False})
    wire.clear()
    widget.add_frame(synthetic_frame("umap", 0, N, background=False))
    child = _opens(wire, widget.comm.comm_id)[0]
    assert child["data"]["state"]["data"]["background"] is None
    assert widget.inverse == {"sentrycam": True, "umap": False}


def test_bad_frames_fail_fast():
    widget = SentryCamWidget(LABELS, {"sentrycam": True})
    widget.add_frame(synthetic_frame("sentrycam", 0, N))
    with pytest.raises(InputError, match="already sent"):
        widget.add_frame(synthetic_frame("sentrycam", 0, N))
    with pytest.raises(InputError, match="probe set has 120"):
        widget.add_frame(synthetic_frame("sentrycam", 1, N - 1))
    with pytest.raises(InputError, match="labels must be"):
        SentryCamWidget(np.zeros((2, 2), int), {"sentrycam": True})
    with pytest.raises(InputError, match="thumbnails"):
        SentryCamWidget(LABELS, {"sentrycam": True}, thumbnails=np.zeros((N, 8), np.uint8))


def test_nan_and_inf_never_reach_the_json_and_are_counted():
    checkpoint = synthetic_checkpoint(0, LABELS)
    checkpoint.scalars = {"val_loss": float("nan"), "train_loss": float("inf"), "acc": 0.5}
    checkpoint.logits[3] = np.nan
    frame = synthetic_frame("sentrycam", 0, N)
    frame.embedding[[1, 5, 9]] = [[np.nan, 0.0], [np.inf, 1.0], [0.0, -np.inf]]
    frame.metrics = {"trustworthiness": float("nan"), "ppr": 0.9}
    frame.alerts = [{"signal": "L", "value": np.float64("nan")}]
    data = checkpoint_payload(checkpoint)
    assert data["scalars"] == {"val_loss": None, "train_loss": None, "acc": 0.5}
    assert np.frombuffer(data["conf"]["buffer"], np.uint8)[3] == 0
    payload = frame_payload(frame)
    assert payload["missing"] == 3
    finite = np.delete(frame.embedding, [1, 5, 9], axis=0)
    assert payload["bounds"] == [
        float(finite[:, 0].min()),
        float(finite[:, 0].max()),
        float(finite[:, 1].min()),
        float(finite[:, 1].max()),
    ]
    assert payload["metrics"] == {"trustworthiness": None, "ppr": 0.9}
    assert payload["alerts"] == [{"signal": "L", "value": None}]
    json.dumps({**payload, "xy": None, "background": None}, allow_nan=False)
    frame.background.extent = (0.0, float("nan"), 0.0, 1.0)
    assert frame_payload(frame)["background"] is None


def test_selection_set_by_the_browser_is_a_numpy_array_in_python():
    widget = SentryCamWidget(LABELS, {"sentrycam": True})
    assert widget.selected.shape == (0,)
    # what ipywidgets does with a state update arriving from the front-end
    widget.set_state({"selection": [4, 17, 30]})
    assert widget.selected.dtype == np.int64
    assert widget.selected.tolist() == [4, 17, 30]
