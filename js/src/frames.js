// What the browser holds of a run: light metadata (epoch, scalars, metrics, alerts) for every
// checkpoint and frame, and decoded point data (a view on the coordinates, their bounds, the
// background's RGBA) only for a bounded window of recently shown frames, re-decoded from the
// synced payload on demand. So memory stays flat however long the run is; the payloads
// themselves are the widget models'.

import { backgroundPlacement, backgroundRGBA, backgroundTable, classColours, decodeArray, decodeCheckpoint, decodeFrame } from "./data.js";

/** Decoded frames kept at once. */
export const DEFAULT_WINDOW = 24;

/** A Map that keeps its `limit` most recently used entries, handing each one it drops to
 * `onEvict(value)` when given. */
export class Lru {
  constructor(limit, onEvict = null) {
    this.limit = Math.max(1, limit);
    this.map = new Map();
    this.onEvict = onEvict;
  }

  get(key, make) {
    if (this.map.has(key)) {
      const value = this.map.get(key);
      this.map.delete(key);
      this.map.set(key, value);
      return value;
    }
    const value = make();
    this.map.set(key, value);
    while (this.map.size > this.limit) {
      const [oldest, dropped] = this.map.entries().next().value;
      this.map.delete(oldest);
      this.onEvict?.(dropped);
    }
    return value;
  }

  get size() {
    return this.map.size;
  }
}

function frameMeta(data) {
  return {
    method: data.method,
    index: data.index,
    epoch: data.epoch,
    metrics: data.metrics ?? {},
    alerts: data.alerts ?? [],
    missing: data.missing ?? 0,
    data,
  };
}

export class FrameStore {
  /** `host.getModel(ref)` resolves child references; `probe` is decodeProbe's result. */
  constructor(host, probe, window = DEFAULT_WINDOW) {
    this.host = host;
    this.probe = probe;
    this.resolved = new Map(); // ref -> meta
    this.checkpoints = []; // checkpoint metadata sorted by index
    this.byMethod = new Map(); // method -> Map(index -> frame meta)
    this.decoded = new Lru(window);
    this.colours = classColours(probe.palette);
    this.backgroundColours = backgroundTable(probe.palette);
  }

  /** Resolve new references (already known ones cost nothing); returns the new frame metas. */
  async sync(checkpointRefs, frameRefs) {
    const fresh = [];
    for (const ref of checkpointRefs) {
      if (this.resolved.has(ref)) continue;
      const meta = decodeCheckpoint((await this.host.getModel(ref)).get("data"));
      this.resolved.set(ref, meta);
      this.checkpoints.push(meta);
    }
    this.checkpoints.sort((a, b) => a.index - b.index);
    for (const ref of frameRefs) {
      if (this.resolved.has(ref)) continue;
      const meta = frameMeta((await this.host.getModel(ref)).get("data"));
      this.resolved.set(ref, meta);
      this.framesOf(meta.method).set(meta.index, meta);
      fresh.push(meta);
    }
    return fresh;
  }

  framesOf(method) {
    if (!this.byMethod.has(method)) this.byMethod.set(method, new Map());
    return this.byMethod.get(method);
  }

  has(method, index) {
    return this.framesOf(method).has(index);
  }

  /** The decoded frame (coordinates, bounds, background with its RGBA), or null if not received. */
  frame(method, index) {
    const meta = this.framesOf(method).get(index);
    if (!meta) return null;
    return this.decoded.get(meta, () => {
      const frame = decodeFrame(meta.data);
      if (frame.background) {
        frame.background.rgba = {
          ...backgroundPlacement(frame.background),
          rgba: backgroundRGBA(frame.background, this.probe.palette, this.backgroundColours),
        };
      }
      return frame;
    });
  }

  /** How a checkpoint's points are coloured: its predictions against the labels, in the
   * palette's colours (nothing is worked out per point until they are drawn). */
  style(checkpoint) {
    return { labels: this.probe.labels, pred: checkpoint.pred, colours: this.colours };
  }

  /** Paths of `points` through every frame of `method` in checkpoint order, read straight from
   * the payloads (no decoding of whole frames). */
  trajectories(method, points) {
    const metas = [...this.framesOf(method).values()].sort((a, b) => a.index - b.index);
    const xs = points.map(() => new Float32Array(metas.length));
    const ys = points.map(() => new Float32Array(metas.length));
    metas.forEach((meta, k) => {
      const xy = decodeArray(meta.data.xy).data;
      points.forEach((p, j) => {
        xs[j][k] = xy[2 * p];
        ys[j][k] = xy[2 * p + 1];
      });
    });
    return { xs, ys, indices: metas.map((m) => m.index) };
  }
}
