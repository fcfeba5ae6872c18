"""export_npz on a run directory with hand-made frames (no projector needed)."""

from __future__ import annotations

import numpy as np
import pytest

from sentrycam_widget.capture import checkpoint_from_arrays
from sentrycam_widget.errors import InputError
from sentrycam_widget.export import export_npz
from sentrycam_widget.records import Frame
from sentrycam_widget.store import RunStore

N, D = 12, 4


def _store(tmp_path, n_checkpoints: int = 3) -> RunStore:
    rng = np.random.default_rng(0)
    labels = np.arange(N) % 3
    store = RunStore.create(tmp_path / "run", labels, n_features=D)
    for i in range(n_checkpoints):
        features = rng.normal(size=(N, D)).astype(np.float32)
        store.append_checkpoint(
            checkpoint_from_arrays(i, 10 * i, features, labels, logits=rng.normal(size=(N, 3)))
        )
    return store


def _frame(method: str, index: int, with_inverse: bool) -> Frame:
    emb = np.full((N, 2), index, dtype=np.float32) + np.arange(N, dtype=np.float32)[:, None]
    recon = (np.arange(N) + index) % 3 if with_inverse else None
    return Frame(method, index, 10 * index, emb, recon_pred=recon)


def test_export_with_inverse_writes_all_keys(tmp_path):
    store = _store(tmp_path)
    for i in range(3):
        store.append_frame(_frame("sentrycam", i, with_inverse=True))
    path = export_npz(store, "sentrycam", tmp_path / "out" / "frames.npz")
    with np.load(path) as data:
        assert sorted(data.files) == ["emb", "epochs", "indices", "recon_pred"]
        assert data["emb"].shape == (3, N, 2) and data["emb"].dtype == np.float32
        np.testing.assert_array_equal(data["emb"][2], _frame("sentrycam", 2, True).embedding)
        np.testing.assert_array_equal(data["epochs"], [0, 10, 20])
        np.testing.assert_array_equal(data["indices"], [0, 1, 2])
        assert data["recon_pred"].shape == (3, N)
        np.testing.assert_array_equal(data["recon_pred"][1], (np.arange(N) + 1) % 3)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["frames.npz"]  # no temp left


def test_export_without_inverse_has_no_recon_pred_and_skips_unprojected(tmp_path):
    store = _store(tmp_path)
    store.append_frame(_frame("umap", 0, with_inverse=False))
    store.append_frame(_frame("umap", 2, with_inverse=False))
    with np.load(export_npz(store, "umap", tmp_path / "umap.npz")) as data:
        assert sorted(data.files) == ["emb", "epochs", "indices"]
        np.testing.assert_array_equal(data["indices"], [0, 2])
        np.testing.assert_array_equal(data["epochs"], [0, 20])


def test_export_of_method_without_frames_is_a_clear_error(tmp_path):
    store = _store(tmp_path)
    with pytest.raises(InputError, match=r"no 'dvi' frames.*--method dvi"):
        export_npz(store, "dvi", tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
