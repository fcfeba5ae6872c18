"""Palette, SPEC §2.6 background colouring and PNG contact sheets, on constructed frames."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sentrycam_widget.errors import InputError
from sentrycam_widget.records import Background, Frame
from sentrycam_widget.render import background_rgba, contact_sheet, frame_title, palette

TAB10_BLUE = (31, 119, 180)
TAB10_GREEN = (44, 160, 44)


def test_palette_is_tab10_then_distinct_extension():
    ten = palette(10)
    assert ten.dtype == np.uint8 and ten.shape == (10, 3)
    assert tuple(ten[0]) == TAB10_BLUE and tuple(ten[2]) == TAB10_GREEN
    many = palette(40)
    assert np.array_equal(many[:10], ten)
    assert len({tuple(c) for c in many}) == 40
    assert np.array_equal(palette(3), ten[:3])


def test_palette_rejects_zero_classes():
    with pytest.raises(InputError, match="at least one class"):
        palette(0)


def test_background_colouring_follows_spec_formula():
    bg = Background(
        classes=np.array([[0, 2], [2, 0]]),
        alpha=np.array([[0, 255], [128, 51]]),
        extent=(0.0, 1.0, 0.0, 1.0),
    )
    rgba = background_rgba(bg, palette(3))
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    assert tuple(rgba[0, 0]) == (255, 255, 255, 255)  # boundary -> white
    assert tuple(rgba[0, 1, :3]) == (22, 80, 22)  # m'=1 -> 0.5 * class colour
    m = 128 / 255
    expected = np.rint(0.5 * m * np.array(TAB10_GREEN) + (1 - m) * 255)
    assert np.array_equal(rgba[1, 0, :3], expected)
    m = 51 / 255
    expected = np.rint(0.5 * m * np.array(TAB10_BLUE) + (1 - m) * 255)
    assert np.array_equal(rgba[1, 1, :3], expected)
    assert (rgba[..., 3] == 255).all()


def test_background_class_beyond_palette_is_an_error():
    bg = Background(np.full((2, 2), 5), np.full((2, 2), 255), (0.0, 1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="class 5"):
        background_rgba(bg, palette(3))


def _frame(index: int, background: Background | None = None) -> Frame:
    emb = np.array([[0.05, 0.05], [0.1, 0.05], [0.05, 0.1], [0.1, 0.1]], dtype=np.float32)
    return Frame(
        "sentrycam",
        index,
        index * 2,
        emb,
        background=background,
        metrics={"trustworthiness": 0.9123, "ppr": 0.95},
    )


def test_frame_title_shows_epoch_and_faithfulness():
    assert frame_title(_frame(3)) == "epoch 6 · T=0.912 · PPR=0.950"


def test_contact_sheet_writes_png_of_grid_size_with_background_colours(tmp_path):
    uniform = Background(np.full((20, 20), 2), np.full((20, 20), 255), (0.0, 1.0, 0.0, 1.0))
    frames = [_frame(i, uniform) for i in range(5)]
    labels = np.array([0, 1, 0, 1])
    preds = [np.array([0, 1, 1, 1])] * 5  # point 2 is misclassified
    path = contact_sheet(frames, labels, preds, tmp_path / "sheet.png", columns=3)
    image = Image.open(path)
    assert image.format == "PNG"
    assert image.size == (3 * 320, 2 * 320)
    pixels = np.asarray(image.convert("RGB"))
    # the middle of the first panel is background only: 0.5 * green at full strength
    assert tuple(pixels[170, 160]) == (22, 80, 22)
    colours = {tuple(p) for p in pixels.reshape(-1, 3)}
    assert (255, 255, 255) in colours  # empty sixth panel / margins


def test_contact_sheet_checks_prediction_count(tmp_path):
    with pytest.raises(InputError, match="predictions_per_frame"):
        contact_sheet([_frame(0)], np.array([0, 1, 0, 1]), [], tmp_path / "x.png")


def test_nan_points_and_metrics_leave_the_rest_of_the_png_drawn(tmp_path):
    uniform = Background(np.full((20, 20), 2), np.full((20, 20), 255), (0.0, 1.0, 0.0, 1.0))
    good = _frame(0, uniform)
    bad = _frame(1, uniform)
    bad.embedding[1] = [np.nan, 0.05]
    bad.embedding[3] = [0.1, np.inf]
    bad.metrics["trustworthiness"] = float("nan")
    assert frame_title(bad) == "epoch 2 · T=missing · PPR=0.950 · 2 points missing"
    labels = np.array([0, 1, 0, 1])
    sheets = [
        np.asarray(Image.open(contact_sheet([f], labels, [None], tmp_path / f"{i}.png")))
        for i, f in enumerate((good, bad))
    ]
    blue = np.all(sheets[1][..., :3] == TAB10_BLUE, axis=-1)
    # the two finite class-0 points are drawn; the panel is not blank
    assert blue.sum() > 0
    assert np.all(sheets[0][..., :3] == TAB10_BLUE, axis=-1).sum() == blue.sum()
    bad.background = Background(uniform.classes, uniform.alpha, (0.0, np.nan, 0.0, 1.0))
    sheet = np.asarray(Image.open(contact_sheet([bad], labels, [None], tmp_path / "x.png")))
    assert np.all(sheet[..., :3] == TAB10_BLUE, axis=-1).sum() > 0
