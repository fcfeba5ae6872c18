// Just enough of the anywidget model, host and plot adapter for unit tests under node.

export function createModel(state = {}) {
  const listeners = new Map();
  const emit = (name, ...args) => (listeners.get(name) || []).forEach((cb) => cb(...args));
  const model = {
    saved: 0,
    get: (key) => state[key],
    set: (key, value) => {
      state[key] = value;
      emit(`change:${key}`, value);
    },
    on: (name, cb) => listeners.set(name, [...(listeners.get(name) || []), cb]),
    off: (name, cb) => listeners.set(name, (listeners.get(name) || []).filter((f) => f !== cb)),
    save_changes: () => {
      model.saved++;
    },
    send: () => {},
  };
  return model;
}

/** A host whose children are registered with `add(data)` -> "anywidget:<id>". */
export function createHost() {
  const children = new Map();
  let next = 0;
  return {
    add(data) {
      const id = `m${next++}`;
      children.set(id, createModel({ data }));
      return `anywidget:${id}`;
    },
    async getModel(ref) {
      return children.get(ref.replace("anywidget:", ""));
    },
  };
}

/** Records what the view asks the plot to draw. */
export function createFakePlot() {
  const calls = [];
  const record = (name) => (arg) => calls.push({ name, arg });
  return {
    calls,
    last: (name) => [...calls].reverse().find((c) => c.name === name)?.arg,
    setPoints: (style, key) => calls.push({ name: "setPoints", arg: style, key }),
    prerender: (style, key, ranges) => calls.push({ name: "prerender", arg: style, key, ranges }),
    clearPoints: record("clearPoints"),
    setBackground: record("setBackground"),
    setRanges: record("setRanges"),
    setTrajectories: record("setTrajectories"),
    setHighlight: record("setHighlight"),
    toData: (x, y) => ({ x, y, kx: 1, ky: 1 }),
    onUserRange(callback) {
      this.userRange = callback;
    },
    destroy: record("destroy"),
  };
}

const bytes = (typed) => new DataView(typed.buffer, typed.byteOffset, typed.byteLength);

export function arr(typed, shape) {
  const dtype = { Uint8Array: "uint8", Uint16Array: "uint16", Float32Array: "float32" }[typed.constructor.name];
  return { dtype, shape: shape ?? [typed.length], buffer: bytes(typed) };
}

export const PALETTE = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255]);

export function probePayload(labels, thumbs = null) {
  return {
    labels: arr(new Uint16Array(labels)),
    palette: arr(PALETTE, [3, 3]),
    class_names: ["zero", "one", "two"],
    thumbnails: thumbs,
  };
}

export function checkpointPayload(index, pred) {
  return {
    index,
    epoch: 10 * index,
    scalars: {},
    pred: arr(new Uint16Array(pred)),
    conf: arr(new Uint8Array(pred.map(() => 255))),
  };
}

export function framePayload(method, index, xy, { background = true, alerts = [] } = {}) {
  const n = xy.length / 2;
  return {
    method,
    index,
    epoch: 10 * index,
    xy: arr(new Float32Array(xy), [n, 2]),
    bounds: [0, 10, 0, 10],
    background: background
      ? {
          classes: arr(new Uint8Array([0, 1, 2, 0]), [2, 2]),
          alpha: arr(new Uint8Array([255, 0, 128, 51])),
          extent: [0, 10, 0, 10],
        }
      : null,
    metrics: { trustworthiness: 0.9123, ppr: 0.95 },
    alerts,
  };
}

/** Coordinates interleaved as frames hold them: [x0, y0, x1, y1, ...]. */
export function interleave(x, y) {
  return Float32Array.from({ length: 2 * x.length }, (_, k) => (k % 2 ? y : x)[k >> 1]);
}
