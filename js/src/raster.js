// Points rasterised into one RGBA image in the browser, so that a frame switch hands Bokeh a
// single image however many points there are (Bokeh's canvas scatter restyles every marker on
// every paint, which measured 150-350 ms for 10,000 points). Markers are discs drawn as one run
// of pixels per row, straight into a reused Uint32Array.

import { packPixel } from "./data.js";
import { Lru } from "./frames.js";

/** A packed pixel blended 75 % towards white: how points outside a selection are drawn. */
export function fadePixel(pixel) {
  const mix = (v) => Math.round(v + (255 - v) * 0.75);
  return packPixel(mix(pixel & 255), mix((pixel >>> 8) & 255), mix((pixel >>> 16) & 255));
}

/** A disc of `radius` pixels around a pixel centre: for each row from -reach to +reach, the
 * half-width `w` of its run of pixels [-w, w] (-1: the row is empty). */
export function disc(radius) {
  const reach = Math.ceil(radius);
  const halfWidths = new Int16Array(2 * reach + 1).fill(-1);
  for (let dy = -reach; dy <= reach; dy++) {
    for (let dx = 0; dx <= reach; dx++) if (Math.hypot(dx, dy) <= radius) halfWidths[dy + reach] = dx;
  }
  return { reach, halfWidths };
}

const DISCS = new Map();

/** The dot (radius 3.3 px) and the ring's outer disc (5.3 px), scaled for the screen's
 * device-pixel ratio. A ring is its outer disc in the label's colour under the dot. */
export function markers(scale = 1) {
  if (!DISCS.has(scale)) DISCS.set(scale, { dot: disc(3.3 * scale), ring: disc(5.3 * scale) });
  return DISCS.get(scale);
}

function fillDisc(out, width, height, col, row, { reach, halfWidths }, pixel) {
  if (col >= reach && col < width - reach && row >= reach && row < height - reach) {
    // wholly inside: no clipping
    for (let k = 0, base = (row - reach) * width + col; k < halfWidths.length; k++, base += width) {
      const w = halfWidths[k];
      for (let p = base - w; p <= base + w; p++) out[p] = pixel;
    }
    return;
  }
  for (let k = 0; k < halfWidths.length; k++) {
    const r = row - reach + k;
    if (r < 0 || r >= height) continue;
    const w = halfWidths[k];
    const end = r * width + Math.min(width - 1, col + w);
    for (let p = r * width + Math.max(0, col - w); p <= end; p++) out[p] = pixel;
  }
}

// Scratch space reused by every call: each point's centre cell, and for each cell of the grid
// the last point drawn there. Grown when needed, never shrunk (a 520² plot: about 1 MB).
let cellOf = new Int32Array(0);
let lastAt = new Int32Array(0);

/** Each point's centre cell on a grid reaching `margin` pixels beyond the raster on every side,
 * `stride` cells a row, into `cells` (-1: not drawn, being hidden, off the raster or not
 * finite). Each loop of the rasteriser is a function of its own: V8 optimises a long loop while
 * it runs, and that code then stays valid for the calls after. */
function centreCells(xy, visible, ranges, width, height, margin, stride, cells) {
  const [x0, x1, y0, y1] = ranges;
  const sx = width / (x1 - x0);
  const sy = height / (y1 - y0);
  for (let i = 0; i < xy.length / 2; i++) {
    const col = Math.floor((xy[2 * i] - x0) * sx);
    const row = Math.floor((xy[2 * i + 1] - y0) * sy);
    // written so that NaN and ±inf coordinates fail the test and are skipped
    const drawn = (visible === null || visible[i]) && col >= -margin && col <= width + margin && row >= -margin && row <= height + margin;
    cells[i] = drawn ? (row + margin) * stride + col + margin : -1;
  }
}

/** Mark each cell with the last of the pale (`pale`) or the other points drawn on it. */
function claimCells(cells, n, faded, pale, last) {
  for (let i = 0; i < n; i++) if (cells[i] >= 0 && (faded !== null && faded[i] === 1) === pale) last[cells[i]] = i;
}

/** Draw the pale (`pale`) or the other points, leaving out those a later point covers. */
function drawPass(out, width, height, points, cells, n, last, stride, margin, shapes, pale) {
  const { labels, pred = null, colours, faded = null } = points;
  const paint = pale ? colours.map(fadePixel) : colours;
  for (let i = 0; i < n; i++) {
    const cell = cells[i];
    if (cell < 0 || (faded !== null && faded[i] === 1) !== pale) continue;
    const label = labels[i];
    const p = pred === null ? label : pred[i];
    const j = last[cell];
    // covered by point j, drawn later: a dot under anything, a ring under a ring
    if (j !== i && (p === label || pred[j] !== labels[j])) continue;
    const col = (cell % stride) - margin;
    const row = (cell - col - margin) / stride - margin;
    if (p !== label) fillDisc(out, width, height, col, row, shapes.ring, paint[label]);
    fillDisc(out, width, height, col, row, shapes.dot, paint[p]);
  }
}

/** Draw the points (`xy`, interleaved) into a transparent RGBA raster (`out`, uint32
 * [height * width], row 0 at the bottom like a Bokeh image) covering `ranges` =
 * [x0, x1, y0, y1], markers scaled by `scale` (device pixels per CSS pixel). Colours
 * (SPEC §2.6): a point is a dot in its predicted class's colour (`pred`, null: every point is
 * right), and a misclassified one sits in a ring in its label's colour (`labels`); `colours`
 * holds each class's packed pixel. Points whose coordinates are not finite are skipped, so are
 * points with `visible[i] === 0`; points with `faded[i] === 1` are drawn pale first, so the
 * others lie on top.
 *
 * A point that a later-drawn point on the same centre pixel covers entirely (a dot under any
 * marker, a ring under a ring) is not drawn at all: every pixel it would write is written again
 * afterwards, so the picture is the same. Dense frames repeat centres a lot (about half of
 * 50,000 clustered points on a 520² plot). */
export function rasterizePoints(points, ranges, width, height, out, scale = 1) {
  const { xy, visible = null, faded = null } = points;
  const shapes = markers(scale);
  const margin = shapes.ring.reach;
  const n = xy.length / 2;
  const stride = width + 2 * margin + 1;
  if (cellOf.length < n) cellOf = new Int32Array(n);
  if (lastAt.length < stride * (height + 2 * margin + 1)) lastAt = new Int32Array(stride * (height + 2 * margin + 1));
  centreCells(xy, visible, ranges, width, height, margin, stride, cellOf);
  // the last point drawn on each centre cell, in drawing order (pale ones first)
  if (faded !== null) claimCells(cellOf, n, faded, true, lastAt);
  claimCells(cellOf, n, faded, false, lastAt);
  out.fill(0);
  if (faded !== null) drawPass(out, width, height, points, cellOf, n, lastAt, stride, margin, shapes, true);
  drawPass(out, width, height, points, cellOf, n, lastAt, stride, margin, shapes, false);
  return out;
}

/** Point rasters of recently drawn or prerendered frames under their keys, `limit` of them. A
 * new raster is drawn into the buffer of one the cache dropped (not a fresh 1 MB allocation per
 * switch, which also kept the garbage collector busy), except the buffer Bokeh holds (`show`):
 * it is never written while shown. Holds `limit` rasters, one spare and the one shown. */
export class RasterCache {
  constructor(limit) {
    this.made = 0;
    this.spare = null;
    this.shown = null;
    this.kept = new Lru(limit, (image) => {
      if (image !== this.shown) this.spare = image;
    });
  }

  /** The raster kept under `key` (null: not kept), else `draw(buffer)` into a buffer of
   * `size` pixels: the spare when it has that size, else a new one. */
  get(key, size, draw) {
    const make = () => {
      this.made++;
      const buffer = this.spare?.length === size ? this.spare : new Uint32Array(size);
      this.spare = null;
      return draw(buffer);
    };
    return key == null ? make() : this.kept.get(key, make);
  }

  /** `image` is now the one on screen; the one it replaces becomes the spare unless kept. */
  show(image) {
    const before = this.shown;
    this.shown = image;
    if (before && before !== image && ![...this.kept.map.values()].includes(before)) this.spare = before;
  }

  get size() {
    return this.kept.size;
  }
}
