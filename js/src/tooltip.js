// The hover tooltip: sample number, label, prediction with its confidence, and the sample's
// thumbnail when the probe set carries images.

import { h } from "./dom.js";

function thumbnail(thumbs, i) {
  const [, rows, cols, channels = 1] = thumbs.shape;
  const canvas = h("canvas", "sc-thumb");
  canvas.width = cols;
  canvas.height = rows;
  const ctx = canvas.getContext?.("2d");
  if (ctx) {
    const img = ctx.createImageData(cols, rows);
    const base = i * rows * cols * channels;
    for (let p = 0; p < rows * cols; p++) {
      for (let k = 0; k < 3; k++) {
        img.data[4 * p + k] = thumbs.data[base + p * channels + (channels === 3 ? k : 0)];
      }
      img.data[4 * p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  return canvas;
}

/** Fill `tooltip` for point `i` of `probe` at `checkpoint` (null before the first one). */
export function fillTooltip(tooltip, probe, checkpoint, i) {
  const name = (c) => probe.classNames[c] ?? String(c);
  const lines = [`sample ${i}`, `label ${name(probe.labels[i])}`];
  if (checkpoint?.pred) {
    const conf = checkpoint.conf ? ` (${Math.round((100 * checkpoint.conf[i]) / 255)}%)` : "";
    lines.push(`prediction ${name(checkpoint.pred[i])}${conf}`);
  }
  tooltip.replaceChildren(...lines.map((t) => h("div", "sc-tip-line", t)));
  if (probe.thumbs) tooltip.prepend(thumbnail(probe.thumbs, i));
}
