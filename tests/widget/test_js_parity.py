"""Python and the JS widget colour the same decision raster identically (one SPEC §2.6 rule)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sentrycam_widget.records import Background
from sentrycam_widget.render import background_rgba, palette

JS_SRC = Path(__file__).resolve().parents[2] / "js" / "src" / "data.js"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_background_colours_match_render_background_rgba():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 12, (16, 16))
    alpha = rng.integers(0, 256, (16, 16)).astype(np.uint8)
    alpha[0, :] = [0, 1, 2, 127, 128, 129, 254, 255, 51, 102, 153, 204, 10, 20, 30, 40]
    bg = Background(classes, alpha, (0.0, 1.0, 0.0, 1.0))
    colours = palette(12)
    script = f"""
    import {{ backgroundRGBA }} from {json.dumps(JS_SRC.as_uri())};
    const input = JSON.parse(process.argv[1]);
    const bg = {{ classes: {{ data: Uint16Array.from(input.classes), shape: [16, 16] }},
                 alpha: Uint8Array.from(input.alpha) }};
    process.stdout.write(JSON.stringify([...backgroundRGBA(bg, Uint8Array.from(input.palette))]));
    """
    payload = json.dumps(
        {
            "classes": classes.ravel().tolist(),
            "alpha": alpha.ravel().tolist(),
            "palette": colours.ravel().tolist(),
        }
    )
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script, payload],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    js = np.asarray(json.loads(out.stdout), dtype=np.uint8).reshape(16, 16, 4)
    assert np.array_equal(js, background_rgba(bg, colours))
