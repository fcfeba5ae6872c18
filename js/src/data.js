// Pure data logic of the widget: decoding the binary payloads Python sends, colours, the
// decision-background raster, hit testing and trajectories. No DOM and no Bokeh here, so all of
// it is unit-tested under node.

const WHITE = 255;

/** A typed-array view of a binary buffer (DataView, typed array or ArrayBuffer), copying only
 * when the bytes are not aligned for the element type. */
export function typedView(buffer, Type) {
  if (buffer == null) return null;
  let bytes;
  if (buffer instanceof ArrayBuffer) bytes = new Uint8Array(buffer);
  else if (ArrayBuffer.isView(buffer)) {
    bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } else throw new TypeError(`expected a binary buffer, got ${typeof buffer}`);
  if (bytes.byteLength % Type.BYTES_PER_ELEMENT !== 0) {
    throw new RangeError(`buffer of ${bytes.byteLength} bytes is not a whole number of ${Type.name}`);
  }
  if (bytes.byteOffset % Type.BYTES_PER_ELEMENT !== 0) bytes = bytes.slice();
  return new Type(bytes.buffer, bytes.byteOffset, bytes.byteLength / Type.BYTES_PER_ELEMENT);
}

const DTYPES = { uint8: Uint8Array, uint16: Uint16Array, float32: Float32Array };

/** Decode `{dtype, shape, buffer}` as sent by sentrycam_widget.widget._array. */
export function decodeArray(packed) {
  if (packed == null) return null;
  const Type = DTYPES[packed.dtype];
  if (!Type) throw new TypeError(`unsupported dtype ${packed.dtype}`);
  const data = typedView(packed.buffer, Type);
  const size = packed.shape.reduce((a, b) => a * b, 1);
  if (data.length !== size) {
    throw new RangeError(`array of shape [${packed.shape}] holds ${data.length} values`);
  }
  return { data, shape: packed.shape };
}

/** The probe set: labels, palette, class names and optional thumbnails. */
export function decodeProbe(probe) {
  const labels = decodeArray(probe.labels).data;
  const palette = decodeArray(probe.palette).data;
  const thumbs = decodeArray(probe.thumbnails);
  return {
    n: labels.length,
    labels,
    palette,
    nClasses: palette.length / 3,
    classNames: probe.class_names ?? [],
    thumbs,
  };
}

/** One checkpoint: epoch, step (null when not recorded), scalars, predictions/confidence. */
export function decodeCheckpoint(data) {
  return {
    index: data.index,
    epoch: data.epoch,
    step: data.step ?? null,
    scalars: data.scalars ?? {},
    pred: data.pred ? decodeArray(data.pred).data : null,
    conf: data.conf ? decodeArray(data.conf).data : null,
  };
}

/** Bounds [x0, x1, y0, y1] of the finite points among the interleaved coordinates `xy`, and
 * how many are not finite (NaN/inf). A function of its own, not a loop inside decodeFrame: V8
 * optimises the loop while it runs, and that code then stays valid for the calls after. */
export function finiteBounds(xy) {
  const n = xy.length / 2;
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  let missing = 0;
  for (let i = 0; i < n; i++) {
    const a = xy[2 * i];
    const b = xy[2 * i + 1];
    // a - a is NaN exactly when a is NaN or ±inf
    if (a - a !== 0 || b - b !== 0) {
      missing++;
      continue;
    }
    if (a < x0) x0 = a;
    if (a > x1) x1 = a;
    if (b < y0) y0 = b;
    if (b > y1) y1 = b;
  }
  return { bounds: missing === n ? null : [x0, x1, y0, y1], missing };
}

/** One frame: the interleaved coordinates `xy` ([x0, y0, x1, y1, ...], a view on the payload,
 * not a copy), the bounds of the finite points and how many are not finite, plus the extras. */
export function decodeFrame(data) {
  const xy = decodeArray(data.xy).data;
  const n = xy.length / 2;
  const { bounds, missing } = finiteBounds(xy);
  const bg = data.background;
  return {
    method: data.method,
    index: data.index,
    epoch: data.epoch,
    xy,
    n,
    bounds,
    missing,
    background: bg
      ? {
          classes: decodeArray(bg.classes),
          alpha: decodeArray(bg.alpha).data,
          extent: bg.extent,
        }
      : null,
    metrics: data.metrics ?? {},
    alerts: data.alerts ?? [],
  };
}

/** One RGBA pixel as a little-endian uint32 (the byte order of canvas ImageData). */
export function packPixel(r, g, b, a = 255) {
  return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

/** The palette's colours as packed pixels, one per class. */
export function classColours(palette) {
  const colours = new Uint32Array(palette.length / 3);
  for (let c = 0; c < colours.length; c++) colours[c] = packPixel(palette[3 * c], palette[3 * c + 1], palette[3 * c + 2]);
  return colours;
}

/** numpy.rint: round half to even, so JS and Python colour the raster identically. */
export function rint(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Every background colour a palette can give, as packed pixels indexed by class · 256 + alpha:
 * rgb = 0.5·m'·class + (1 − m')·white with m' = alpha / 255, the same rule as
 * render.background_rgba in Python. Worked out once per palette (10 classes: 2,560 pixels). */
export function backgroundTable(palette) {
  const table = new Uint32Array((palette.length / 3) * 256);
  const channel = (s, v) => Math.min(255, Math.max(0, rint(0.5 * s * v + (1 - s) * WHITE)));
  for (let c = 0; c < palette.length / 3; c++) {
    for (let alpha = 0; alpha < 256; alpha++) {
      const s = alpha / 255;
      table[c * 256 + alpha] = packPixel(channel(s, palette[3 * c]), channel(s, palette[3 * c + 1]), channel(s, palette[3 * c + 2]));
    }
  }
  return table;
}

/** RGBA bytes of a decision raster (row 0 = bottom), each cell looked up in `table`
 * (backgroundTable of the palette; pass it to colour many rasters with one table). */
export function backgroundRGBA(background, palette, table = backgroundTable(palette)) {
  const classes = background.classes.data;
  const { alpha } = background;
  const out = new Uint8Array(classes.length * 4);
  const pixels = new Uint32Array(out.buffer);
  for (let i = 0; i < classes.length; i++) pixels[i] = table[classes[i] * 256 + alpha[i]];
  return out;
}

/** Where the raster lies in data coordinates: cell centres sit on linspace(x0, x1, R), so the
 * image reaches half a cell beyond the extent on each side. */
export function backgroundPlacement(background) {
  const [rows, cols] = background.classes.shape;
  const [x0, x1, y0, y1] = background.extent;
  const dx = cols > 1 ? (x1 - x0) / (cols - 1) : 1;
  const dy = rows > 1 ? (y1 - y0) / (rows - 1) : 1;
  return { x: x0 - dx / 2, y: y0 - dy / 2, dw: x1 - x0 + dx, dh: y1 - y0 + dy, rows, cols };
}

/** Share of the points' extent added on each side when the view fits a frame. */
export const FIT_MARGIN = 0.06;

/** Axis ranges that fit a frame's finite points (padded by FIT_MARGIN on each side), so a
 * diverged or collapsed frame still shows its points; the background is clipped to them. With
 * no finite point, the background's area, else a unit square. */
export function frameRanges(frame) {
  if (frame.bounds) {
    const [x0, x1, y0, y1] = frame.bounds;
    // a collapsed frame (all points on one spot) still gets a small view around them
    const floor = Math.max(x1 - x0, y1 - y0) * 0.01 || Math.max(Math.abs(x0), Math.abs(y0), 1) * 1e-3;
    return [...padded(x0, x1, floor), ...padded(y0, y1, floor)];
  }
  if (frame.background) {
    const p = backgroundPlacement(frame.background);
    return [p.x, p.x + p.dw, p.y, p.y + p.dh];
  }
  return [-1, 1, -1, 1];
}

function padded(lo, hi, floor) {
  const width = Math.max(hi - lo, floor);
  const mid = lo + (hi - lo) / 2;
  const half = width * (0.5 + FIT_MARGIN);
  return [mid - half, mid + half];
}

/** Index of the point nearest to (px, py) within `maxPx` screen pixels, or -1; `xy` holds the
 * points interleaved. `kx`, `ky` are pixels per data unit, so distance is measured on screen;
 * points with `visible[i] === 0` and points without finite coordinates are never found. */
export function nearestPoint(xy, px, py, kx, ky, maxPx, visible = null) {
  let best = -1;
  let bestD = maxPx * maxPx + 1e-9;
  for (let i = 0; i < xy.length / 2; i++) {
    if (visible && !visible[i]) continue;
    const dx = (xy[2 * i] - px) * kx;
    const dy = (xy[2 * i + 1] - py) * ky;
    const d = dx * dx + dy * dy;
    if (d < bestD) {
      bestD = d;
      best = i;
    }
  }
  return best;
}

export function alertText(alert) {
  const what = alert.explanation ?? alert.message ?? `${alert.signal} fired`;
  return alert.signal ? `${alert.signal}: ${what}` : what;
}

/** Faithfulness badge text, e.g. "T(15) 0.912 · PPR 0.97". */
export function badgeText(metrics) {
  const parts = [];
  if (metrics.trustworthiness != null) parts.push(`T(15) ${metrics.trustworthiness.toFixed(3)}`);
  if (metrics.ppr != null) parts.push(`PPR ${metrics.ppr.toFixed(3)}`);
  return parts.join(" · ");
}

/** The live status line from the `status` trait. */
export function statusText(status, nCheckpoints) {
  const parts = [`${nCheckpoints} checkpoint${nCheckpoints === 1 ? "" : "s"}`];
  if (status.latest_epoch != null) parts.push(`latest epoch ${status.latest_epoch}`);
  if (status.projecting) parts.push(`projecting ${status.projecting}`);
  if (status.queued) parts.push(`queue ${status.queued}`);
  if (status.backfill) parts.push(`${status.backfill} to backfill`);
  if (status.warming) parts.push("warming up (first projection compiles)");
  if (status.closed) parts.push("done");
  return parts.join(" · ");
}

/** Display name of a projection method. */
export function methodLabel(method) {
  const labels = { sentrycam: "SentryCam", umap: "UMAP", "umap-independent": "UMAP (independent)", dvi: "DVI" };
  return labels[method] ?? method;
}

/** Where a checkpoint sits in training: "epoch E", plus "· step S" when the step was recorded. */
export function checkpointLabel(checkpoint) {
  const epoch = `epoch ${checkpoint.epoch}`;
  return checkpoint.step == null ? epoch : `${epoch} · step ${checkpoint.step}`;
}
