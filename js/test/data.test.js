import assert from "node:assert/strict";
import { test } from "node:test";
import {
  alertText,
  backgroundPlacement,
  backgroundRGBA,
  badgeText,
  checkpointLabel,
  classColours,
  decodeCheckpoint,
  decodeFrame,
  finiteBounds,
  frameRanges,
  nearestPoint,
  packPixel,
  rint,
  statusText,
  typedView,
} from "../src/data.js";
import { fadePixel, rasterizePoints } from "../src/raster.js";
import { PALETTE, framePayload, interleave } from "./fake_model.js";

test("typedView wraps aligned bytes without copying and copies misaligned ones", () => {
  const f = new Float32Array([1.5, -2]);
  const view = typedView(new DataView(f.buffer), Float32Array);
  assert.equal(view.buffer, f.buffer);
  const shifted = new Uint8Array(9);
  shifted.set(new Uint8Array(f.buffer), 1);
  assert.deepEqual([...typedView(new DataView(shifted.buffer, 1, 8), Float32Array)], [1.5, -2]);
  assert.throws(() => typedView(new DataView(new ArrayBuffer(6)), Float32Array), /whole number/);
});

test("decodeFrame reads the interleaved coordinates in place and bounds them", () => {
  const payload = framePayload("sentrycam", 2, [1, 2, 3, 4, 5, 6]);
  const frame = decodeFrame(payload);
  assert.deepEqual([...frame.xy], [1, 2, 3, 4, 5, 6]);
  assert.equal(frame.xy.buffer, payload.xy.buffer.buffer); // a view on the payload, not a copy
  assert.equal(frame.n, 3);
  assert.deepEqual(frame.bounds, [1, 5, 2, 6]);
  assert.equal(frame.index, 2);
  assert.deepEqual(frame.background.classes.shape, [2, 2]);
});

test("each class's colour is one packed pixel", () => {
  assert.deepEqual([...classColours(PALETTE)], [packPixel(255, 0, 0), packPixel(0, 255, 0), packPixel(0, 0, 255)]);
});

test("points are rasterised as dots, rings around misclassified ones, row 0 at the bottom", () => {
  const [red, green, blue] = classColours(PALETTE);
  const look = { labels: new Uint16Array([0, 1]), pred: new Uint16Array([0, 2]), colours: classColours(PALETTE) };
  const points = { xy: new Float32Array([2.5, 2.5, 7.5, 7.5]), ...look };
  const out = rasterizePoints(points, [0, 10, 0, 10], 20, 20, new Uint32Array(400));
  const at = (col, row) => out[row * 20 + col];
  assert.equal(at(5, 5), red); // point 0 at pixel (5, 5)
  assert.equal(at(5, 15), 0); // nothing above it
  assert.equal(at(15, 15), blue); // point 1's dot in the predicted colour (class 2)
  assert.equal(at(19, 15), green); // ring (radius 4) in the label colour (class 1)
  assert.equal(at(9, 5), 0); // point 0 is correct: no ring
  assert.equal(new Uint8Array(out.buffer)[4 * (5 * 20 + 5)], 255); // byte order R, G, B, A
  const hiDpi = rasterizePoints(points, [0, 10, 0, 10], 40, 40, new Uint32Array(1600), 2);
  assert.equal(hiDpi[10 * 40 + 16], red); // dot radius doubles with the pixel ratio
  assert.equal(out[5 * 20 + 11], 0);
});

test("background colour follows SPEC 2.6 with numpy rounding", () => {
  assert.equal(rint(2.5), 2);
  assert.equal(rint(3.5), 4);
  assert.equal(rint(-0.4), -0);
  const bg = decodeFrame(framePayload("sentrycam", 0, [0, 0, 1, 1])).background;
  const rgba = backgroundRGBA(bg, PALETTE);
  // cell 0: class 0 (red), alpha 255 -> 0.5*255 = 127.5 -> 128 for red, 0 for green/blue
  assert.deepEqual([...rgba.slice(0, 4)], [128, 0, 0, 255]);
  // cell 1: boundary (alpha 0) -> white
  assert.deepEqual([...rgba.slice(4, 8)], [255, 255, 255, 255]);
  // cell 3: class 0, alpha 51 (m' = 0.2): 0.5*0.2*255 + 0.8*255 = 229.5 -> 230
  assert.deepEqual([...rgba.slice(12, 16)], [230, 204, 204, 255]);
});

test("the raster reaches half a cell beyond the extent; the view fits the points", () => {
  const frame = decodeFrame(framePayload("sentrycam", 0, [0, 0, 1, 1]));
  const placement = backgroundPlacement(frame.background);
  assert.deepEqual(placement, { x: -5, y: -5, dw: 20, dh: 20, rows: 2, cols: 2 });
  // the points span [0, 1] on both axes: the view is that plus 6 % on each side, not the raster
  assert.deepEqual(frameRanges(frame).map((v) => +v.toFixed(6)), [-0.06, 1.06, -0.06, 1.06]);
});

test("a diverged frame is fitted to its points and a collapsed one still gets a view", () => {
  const diverged = decodeFrame(framePayload("m", 0, [1e6, 2e6, 1e6 + 10, 2e6 + 10]));
  const [x0, x1, y0, y1] = frameRanges(diverged);
  assert.ok(x0 < 1e6 && x1 > 1e6 + 10 && x1 - x0 < 12, `${x0} ${x1}`);
  assert.ok(y0 < 2e6 && y1 > 2e6 + 10 && y1 - y0 < 12);
  const collapsed = decodeFrame(framePayload("m", 0, [3, 3, 3, 3, 3, 3]));
  const [c0, c1] = frameRanges(collapsed);
  assert.ok(c0 < 3 && c1 > 3 && c1 - c0 < 0.01, `${c0} ${c1}`);
});

test("NaN/inf coordinates are counted, left out of the bounds and never drawn", () => {
  const x = new Float32Array([0, NaN, 4, Infinity]);
  const y = new Float32Array([1, 2, -1, 0]);
  assert.deepEqual(finiteBounds(interleave(x, y)), { bounds: [0, 4, -1, 1], missing: 2 });
  const allMissing = decodeFrame(framePayload("m", 0, [NaN, 1, 2, -Infinity]));
  assert.deepEqual([allMissing.bounds, allMissing.missing], [null, 2]);
  const frame = decodeFrame(framePayload("m", 0, [0, 1, NaN, 2, 4, -1, Infinity, 0]));
  assert.equal(frame.missing, 2);
  assert.deepEqual(frame.bounds, [0, 4, -1, 1]);
  const colours = classColours(PALETTE);
  const look = { labels: new Uint16Array([0, 1, 2, 0]), pred: null, colours };
  const out = rasterizePoints({ xy: interleave(x, y), ...look }, [-1, 5, -2, 3], 30, 25, new Uint32Array(750));
  const drawn = new Set(out.filter((p) => p !== 0));
  assert.deepEqual([...drawn].sort(), [colours[0], colours[2]].sort());
});

test("hidden points are not drawn; faded ones are drawn pale under the others", () => {
  const [red, green] = classColours(PALETTE);
  const look = { labels: new Uint16Array([0, 1]), pred: null, colours: classColours(PALETTE) };
  const points = { xy: new Float32Array([2.5, 2.5, 7.5, 7.5]), ...look };
  const hidden = rasterizePoints({ ...points, visible: new Uint8Array([1, 0]) }, [0, 10, 0, 10], 20, 20, new Uint32Array(400));
  assert.equal(hidden[5 * 20 + 5], red);
  assert.equal(hidden[15 * 20 + 15], 0);
  const pale = rasterizePoints({ ...points, faded: new Uint8Array([1, 0]) }, [0, 10, 0, 10], 20, 20, new Uint32Array(400));
  assert.equal(pale[5 * 20 + 5], fadePixel(red));
  assert.equal(pale[15 * 20 + 15], green);
  assert.equal(fadePixel(packPixel(255, 0, 0)), packPixel(255, 191, 191));
});

test("nearestPoint measures on screen and respects the radius", () => {
  const xy = new Float32Array([0, 0, 10, 0, 20, 0]);
  assert.equal(nearestPoint(xy, 9, 1, 1, 1, 3), 1);
  assert.equal(nearestPoint(xy, 15, 0, 1, 1, 3), -1);
  assert.equal(nearestPoint(xy, 14, 0, 10, 10, 60), 1);
  assert.equal(nearestPoint(xy, 16, 0, 10, 10, 60), 2);
  assert.equal(nearestPoint(xy, 16, 0, 10, 10, 60, new Uint8Array([1, 1, 0])), 1);
  assert.equal(nearestPoint(new Float32Array([NaN, 0]), 0, 0, 1, 1, 60), -1);
});

test("alerts, badge and status lines read like sentences", () => {
  assert.equal(alertText({ signal: "V", explanation: "variance rose" }), "V: variance rose");
  assert.equal(badgeText({ trustworthiness: 0.91234, ppr: 0.9 }), "T(15) 0.912 · PPR 0.900");
  assert.equal(
    statusText({ latest_epoch: 7, projecting: "sentrycam @ epoch 7", queued: 1, backfill: 2 }, 8),
    "8 checkpoints · latest epoch 7 · projecting sentrycam @ epoch 7 · queue 1 · 2 to backfill",
  );
});

test("a checkpoint is labelled by its epoch, and by its step when one was recorded", () => {
  const withStep = decodeCheckpoint({ index: 2, epoch: 1, step: 300, scalars: {} });
  assert.equal(checkpointLabel(withStep), "epoch 1 · step 300");
  const legacy = decodeCheckpoint({ index: 2, epoch: 1, scalars: {} });
  assert.equal(legacy.step, null);
  assert.equal(checkpointLabel(legacy), "epoch 1");
});

test("the row-run rasteriser paints exactly the pixels within each marker's radius, clipped at the edges", () => {
  // reference: every pixel whose centre offset lies within the radius, later points on top
  const reference = (x, y, look, ranges, width, height, scale) => {
    const out = new Uint32Array(width * height);
    const [x0, x1, y0, y1] = ranges;
    const paint = (col, row, radius, pixel) => {
      for (let r = 0; r < height; r++)
        for (let c = 0; c < width; c++) if (Math.hypot(c - col, r - row) <= radius) out[r * width + c] = pixel;
    };
    for (let i = 0; i < x.length; i++) {
      const col = Math.floor(((x[i] - x0) * width) / (x1 - x0));
      const row = Math.floor(((y[i] - y0) * height) / (y1 - y0));
      const [label, p] = [look.labels[i], look.pred[i]];
      if (p !== label) paint(col, row, 5.3 * scale, look.colours[label]);
      paint(col, row, 3.3 * scale, look.colours[p]);
    }
    return out;
  };
  let seed = 7;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 1.2 - 0.1; // some outside
  const n = 60;
  const x = Float32Array.from({ length: n }, random);
  const y = Float32Array.from({ length: n }, random);
  const labels = Uint16Array.from({ length: n }, (_, i) => i % 3);
  const look = { labels, pred: labels.map((l, i) => (i % 4 === 0 ? (l + 1) % 3 : l)), colours: classColours(PALETTE) };
  for (const [width, height, scale] of [[31, 23, 1], [40, 40, 2], [17, 29, 1.5]]) {
    const got = rasterizePoints({ xy: interleave(x, y), ...look }, [0, 1, 0, 1], width, height, new Uint32Array(width * height), scale);
    assert.deepEqual([...got], [...reference(x, y, look, [0, 1, 0, 1], width, height, scale)], `${width}x${height}@${scale}`);
  }
});
