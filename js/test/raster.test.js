import assert from "node:assert/strict";
import { test } from "node:test";
import { classColours } from "../src/data.js";
import { Lru } from "../src/frames.js";
import { RasterCache, rasterizePoints } from "../src/raster.js";
import { PALETTE, interleave } from "./fake_model.js";

let seed = 11;
const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;

/** `n` points with many repeated centres (a dense frame), a third of them misclassified. */
function denseFrame(n, spots) {
  const cx = Float32Array.from({ length: spots }, random);
  const cy = Float32Array.from({ length: spots }, random);
  const at = Int32Array.from({ length: n }, () => Math.floor(random() * spots));
  const x = Float32Array.from(at, (s) => cx[s] + (random() < 0.5 ? 0 : 0.004));
  const y = Float32Array.from(at, (s) => cy[s]);
  const labels = Uint16Array.from({ length: n }, (_, i) => i % 3);
  const pred = labels.map((l, i) => (i % 3 === 0 ? (l + 1) % 3 : l));
  return { xy: interleave(x, y), labels, pred, colours: classColours(PALETTE) };
}

/** Every point drawn in full, later points on top: the picture the rasteriser must give. */
function paintAll(points, ranges, width, height) {
  const out = new Uint32Array(width * height);
  const [x0, x1, y0, y1] = ranges;
  const disc = (col, row, radius, pixel) => {
    for (let r = 0; r < height; r++)
      for (let c = 0; c < width; c++) if (Math.hypot(c - col, r - row) <= radius) out[r * width + c] = pixel;
  };
  const order = [...points.labels.keys()];
  if (points.faded) order.sort((a, b) => points.faded[b] - points.faded[a]); // pale ones first, stable
  for (const i of order) {
    if (points.visible && !points.visible[i]) continue;
    const col = Math.floor(((points.xy[2 * i] - x0) * width) / (x1 - x0));
    const row = Math.floor(((points.xy[2 * i + 1] - y0) * height) / (y1 - y0));
    const pale = (p) => (points.faded?.[i] ? fade(p) : p);
    const [label, p] = [points.labels[i], points.pred[i]];
    if (p !== label) disc(col, row, 5.3, pale(points.colours[label]));
    disc(col, row, 3.3, pale(points.colours[p]));
  }
  return out;
}

function fade(pixel) {
  const mix = (v) => Math.round(v + (255 - v) * 0.75);
  return (0xff000000 | (mix((pixel >>> 16) & 255) << 16) | (mix((pixel >>> 8) & 255) << 8) | mix(pixel & 255)) >>> 0;
}

test("points hidden under a later point on the same centre are skipped with the same picture", () => {
  const points = denseFrame(400, 40); // ten points per centre on average
  const ranges = [-0.1, 1.1, -0.1, 1.1];
  const got = rasterizePoints(points, ranges, 37, 41, new Uint32Array(37 * 41));
  assert.deepEqual([...got], [...paintAll(points, ranges, 37, 41)]);
  // with pale and hidden points: pale ones are drawn first, so a later pale point does not
  // cover an earlier bright one
  const visible = Uint8Array.from(points.labels, (_, i) => (i % 7 === 0 ? 0 : 1));
  const faded = Uint8Array.from(points.labels, (_, i) => (i % 5 < 2 ? 1 : 0));
  const looks = { ...points, visible, faded };
  const pale = rasterizePoints(looks, ranges, 37, 41, new Uint32Array(37 * 41));
  assert.deepEqual([...pale], [...paintAll(looks, ranges, 37, 41)]);
});

test("a raster drawn into a reused buffer is pixel-identical to one drawn into a fresh buffer", () => {
  const frames = Array.from({ length: 6 }, () => denseFrame(300, 60));
  const ranges = [0, 1, 0, 1];
  const size = 24 * 20;
  const cache = new RasterCache(2);
  const fresh = (k) => rasterizePoints(frames[k], ranges, 24, 20, new Uint32Array(size));
  const buffers = new Set();
  for (const k of [0, 1, 2, 3, 4, 5, 0, 1]) {
    const image = cache.get(`frame ${k}`, size, (buffer) => rasterizePoints(frames[k], ranges, 24, 20, buffer));
    cache.show(image);
    buffers.add(image.buffer);
    assert.deepEqual([...image], [...fresh(k)], `frame ${k}`);
  }
  assert.equal(cache.made, 8);
  assert.ok(buffers.size <= 4, `${buffers.size} buffers for 8 rasters`); // 2 kept, the shown one, a spare
});

test("the raster cache never draws into the buffer on screen, nor into one it keeps", () => {
  const cache = new RasterCache(1);
  const draw = (value) => (buffer) => buffer.fill(value);
  const a = cache.get("a", 4, draw(1));
  cache.show(a);
  const b = cache.get("b", 4, draw(2)); // drops a from the cache, but a is on screen
  assert.notEqual(b.buffer, a.buffer);
  assert.deepEqual([...a], [1, 1, 1, 1]);
  cache.show(b); // a leaves the screen: now it is the spare
  const c = cache.get("c", 4, draw(3)); // drops b, which is shown: drawn into a's buffer
  assert.equal(c, a);
  assert.deepEqual([...b], [2, 2, 2, 2]);
  assert.notEqual(cache.get(null, 6, draw(4)), b); // a spare of another size is not used
  assert.equal(cache.get("c", 4, draw(5)), c); // kept: not drawn again
  assert.equal(cache.made, 4);
});

test("the Lru hands what it drops to onEvict", () => {
  const dropped = [];
  const lru = new Lru(2, (value) => dropped.push(value));
  for (const key of ["a", "b", "a", "c", "d"]) lru.get(key, () => key.toUpperCase());
  assert.deepEqual(dropped, ["B", "A"]);
});
