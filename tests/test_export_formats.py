"""Parquet and TensorBoard exports, read back by the libraries that own the formats."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from sentrycam_widget.capture import checkpoint_from_arrays
from sentrycam_widget.cli import main
from sentrycam_widget.errors import InputError
from sentrycam_widget.export_parquet import export_parquet
from sentrycam_widget.export_tensorboard import export_tensorboard
from sentrycam_widget.records import Checkpoint, Frame
from sentrycam_widget.store import RunStore

pq = pytest.importorskip("pyarrow.parquet")
N, D, T = 30, 4, 3
NAMES = ["zero", "one\tuno", "two"]


def _store(tmp_path, *, images: bool = True, logits: bool = True) -> RunStore:
    rng = np.random.default_rng(0)
    labels = np.arange(N) % 3
    thumbs = rng.integers(0, 256, size=(N, 5, 4), dtype=np.uint8) if images else None
    store = RunStore.create(
        tmp_path / "run", labels, n_features=D, class_names=NAMES, images=thumbs
    )
    for i in range(T):
        features = rng.normal(size=(N, D)).astype(np.float32)
        store.append_checkpoint(
            checkpoint_from_arrays(
                i, 10 * i, features, labels, logits=rng.normal(size=(N, 3)) if logits else None
            )
        )
    return store


def _frame(method: str, index: int, with_inverse: bool) -> Frame:
    rng = np.random.default_rng(100 + index)
    emb = rng.normal(size=(N, 2)).astype(np.float32) * 7.3
    recon = (np.arange(N) + index) % 3 if with_inverse else None
    return Frame(method, index, 10 * index, emb, recon_pred=recon)


def _add_frames(store: RunStore, method: str, indices, with_inverse: bool) -> None:
    for i in indices:
        store.append_frame(_frame(method, i, with_inverse))


def test_parquet_is_one_long_table_with_every_column(tmp_path):
    store = _store(tmp_path)
    _add_frames(store, "sentrycam", range(T), with_inverse=True)
    path = export_parquet(store, "sentrycam", tmp_path / "out" / "frames.parquet")
    table = pq.read_table(path)
    assert table.column_names == [
        "checkpoint", "epoch", "point", "x", "y", "label", "prediction", "recon_pred"
    ]  # fmt: skip
    assert table.num_rows == T * N
    assert str(table.schema.field("x").type) == "float"
    data = table.to_pydict()
    for i in range(T):
        rows = slice(i * N, (i + 1) * N)
        checkpoint, frame = store.checkpoint(i), store.frame("sentrycam", i)
        assert data["checkpoint"][rows] == [i] * N and data["epoch"][rows] == [10 * i] * N
        assert data["point"][rows] == list(range(N))
        np.testing.assert_array_equal(np.float32(data["x"][rows]), frame.embedding[:, 0])
        np.testing.assert_array_equal(np.float32(data["y"][rows]), frame.embedding[:, 1])
        assert data["label"][rows] == store.labels.tolist()
        assert data["prediction"][rows] == checkpoint.predictions.tolist()
        assert data["recon_pred"][rows] == frame.recon_pred.tolist()
    about = json.loads(pq.read_schema(path).metadata[b"sentrycam"])
    assert about["method"] == "sentrycam" and about["class_names"] == NAMES
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["frames.parquet"]  # no temp left


def test_parquet_leaves_out_what_the_run_does_not_have(tmp_path):
    store = _store(tmp_path, logits=False)
    _add_frames(store, "umap", [0, 2], with_inverse=False)
    table = pq.read_table(export_parquet(store, "umap", tmp_path / "umap.parquet"))
    assert table.column_names == ["checkpoint", "epoch", "point", "x", "y", "label"]
    assert sorted(set(table.column("checkpoint").to_pylist())) == [0, 2]


def test_exports_of_a_method_without_frames_fail_clearly_and_write_nothing(tmp_path):
    store = _store(tmp_path)
    with pytest.raises(InputError, match=r"no 'dvi' frames.*--method dvi"):
        export_parquet(store, "dvi", tmp_path / "x.parquet")
    with pytest.raises(InputError, match=r"no 'dvi' frames"):
        export_tensorboard(store, "dvi", tmp_path / "tb")
    assert not (tmp_path / "x.parquet").exists() and not (tmp_path / "tb").exists()


def _projector(logdir):
    """TensorBoard's own Embedding Projector plugin serving ``logdir`` (no TensorFlow)."""
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin
    from werkzeug.test import Client

    plugin = ProjectorPlugin(base_plugin.TBContext(logdir=str(logdir)))
    apps = plugin.get_plugin_apps()

    def get(route: str, **params):
        response = Client(apps[route]).get(route, query_string=params)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_data()

    return get


def test_tensorboard_projector_serves_one_embedding_per_checkpoint(tmp_path):
    store = _store(tmp_path)
    _add_frames(store, "sentrycam", range(T), with_inverse=True)
    logdir = tmp_path / "tb"
    export_tensorboard(store, "sentrycam", logdir)
    get = _projector(logdir)
    assert json.loads(get("/runs")) == ["."]
    config = json.loads(get("/info", run="."))
    names = [e["tensorName"] for e in config["embeddings"]]
    assert names == [f"sentrycam/{i:06d} epoch {10 * i}" for i in range(T)]
    for i, name in enumerate(names):
        served = np.frombuffer(get("/tensor", run=".", name=name), dtype=np.float32)
        np.testing.assert_array_equal(served.reshape(N, 2), store.frame("sentrycam", i).embedding)
        rows = [r.split("\t") for r in get("/metadata", run=".", name=name).decode().splitlines()]
        assert rows[0] == ["point", "label", "class", "prediction", "recon_pred"]
        assert [r[1] for r in rows[1:]] == [str(v) for v in store.labels]
        assert rows[2][2] == "one uno"  # a tab in a class name would break the TSV
        assert [int(r[3]) for r in rows[1:]] == store.checkpoint(i).predictions.tolist()
        assert [int(r[4]) for r in rows[1:]] == store.frame("sentrycam", i).recon_pred.tolist()
    sprite = Image.open(io.BytesIO(get("/sprite_image", run=".", name=names[0])))
    per_row = int(np.ceil(np.sqrt(N)))
    assert sprite.size == (per_row * 4, int(np.ceil(N / per_row)) * 5)
    assert config["embeddings"][0]["sprite"]["singleImageDim"] == [4, 5]
    tile = np.asarray(sprite)[5:10, 4 * 2 : 4 * 3]  # row 1, column 2: point per_row + 2
    np.testing.assert_array_equal(tile, store.images[per_row + 2])


def test_tensorboard_export_of_a_second_method_keeps_the_first(tmp_path):
    store = _store(tmp_path, images=False)
    _add_frames(store, "sentrycam", range(T), with_inverse=True)
    _add_frames(store, "umap", [1], with_inverse=False)
    logdir = tmp_path / "tb"
    export_tensorboard(store, "sentrycam", logdir)
    export_tensorboard(store, "umap", logdir)
    export_tensorboard(store, "umap", logdir)  # again: replaced, not duplicated
    get = _projector(logdir)
    config = json.loads(get("/info", run="."))
    names = [e["tensorName"] for e in config["embeddings"]]
    assert names == [f"sentrycam/{i:06d} epoch {10 * i}" for i in range(T)] + [
        "umap/000001 epoch 10"
    ]
    assert all("sprite" not in e for e in config["embeddings"])
    header = get("/metadata", run=".", name=names[-1]).decode().splitlines()[0]
    assert header == "point\tlabel\tclass\tprediction"


def test_cli_export_writes_parquet_and_tensorboard(tmp_path, capsys):
    store = _store(tmp_path)
    _add_frames(store, "sentrycam", range(T), with_inverse=True)
    out = tmp_path / "frames.parquet"
    assert main(["export", str(store.path), "--parquet", str(out)]) == 0
    assert pq.read_table(out).num_rows == T * N
    assert main(["export", str(store.path), "--tensorboard", str(tmp_path / "tb")]) == 0
    assert (tmp_path / "tb" / "projector_config.pbtxt").is_file()
    printed = capsys.readouterr().out
    assert "wrote 3 sentrycam frames" in printed and "tensorboard --logdir" in printed


def test_tensorboard_sprite_is_scaled_down_to_the_projector_limit(tmp_path, monkeypatch):
    import sentrycam_widget.export_tensorboard as tensorboard_export

    monkeypatch.setattr(tensorboard_export, "_MAX_SPRITE_SIDE", 12)  # 6 per row × 5 px > 12
    store = _store(tmp_path)
    _add_frames(store, "sentrycam", [0], with_inverse=False)
    export_tensorboard(store, "sentrycam", tmp_path / "tb")
    get = _projector(tmp_path / "tb")
    config = json.loads(get("/info", run="."))
    width, height = config["embeddings"][0]["sprite"]["singleImageDim"]
    sprite = Image.open(io.BytesIO(get("/sprite_image", run=".", name="sentrycam/000000 epoch 0")))
    assert max(sprite.size) <= 12 and sprite.size == (6 * width, 5 * height)


def test_parquet_has_a_step_column_when_the_run_records_steps(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.arange(N) % 3
    store = RunStore.create(tmp_path / "run", labels, n_features=D)
    for i in range(2):
        features = rng.normal(size=(N, D)).astype(np.float32)
        store.append_checkpoint(Checkpoint(i, i, features, labels, step=500 * (i + 1)))
        store.append_frame(_frame("umap", i, with_inverse=False))
    table = pq.read_table(export_parquet(store, "umap", tmp_path / "steps.parquet"))
    assert table.column_names[:3] == ["checkpoint", "epoch", "step"]
    assert table.column("step").to_pylist() == [500] * N + [1000] * N
