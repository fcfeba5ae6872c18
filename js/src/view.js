// The widget view: controls (method toggle, slider, play, alert markers), status line, tooltip,
// and the glue that turns the synced state into plot updates. Everything here runs on data
// already in the browser, so it keeps working while the kernel is busy training, in a saved
// notebook and in an exported HTML file.

import {
  alertsByCheckpoint,
  backgroundPlacement,
  backgroundRGBA,
  badgeText,
  checkpointLabel,
  decodeCheckpoint,
  decodeFrame,
  decodeProbe,
  frameRanges,
  methodLabel,
  nearestPoint,
  pointStyle,
  statusText,
  trajectory,
} from "./data.js";

const PLAY_INTERVAL_MS = 350;
const HOVER_RADIUS_PX = 8;

function h(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text != null) el.textContent = text;
  return el;
}

/** Children (checkpoints, frames) arrive as "anywidget:<id>" references to small models that
 * each carry one `data` payload; decode each once and remember it. */
class Payloads {
  constructor(host, decode) {
    this.host = host;
    this.decode = decode;
    this.cache = new Map();
  }

  async resolve(refs) {
    const out = [];
    for (const ref of refs) {
      if (!this.cache.has(ref)) {
        const child = await this.host.getModel(ref);
        this.cache.set(ref, this.decode(child.get("data")));
      }
      out.push(this.cache.get(ref));
    }
    return out;
  }
}

/** Builds the DOM inside `el` and keeps it in sync with `model`. `makePlot(container)` returns
 * the plot adapter (Bokeh in the browser, a fake in unit tests). Returns the view's API. */
export async function createView({ model, el, host, makePlot }) {
  const root = h("div", "sc-root");
  const top = h("div", "sc-top");
  const methodBar = h("div", "sc-methods");
  const badge = h("span", "sc-badge");
  const note = h("span", "sc-note");
  top.append(methodBar, badge, note);
  const main = h("div", "sc-main");
  const plotEl = h("div", "sc-plot");
  const overlay = h("div", "sc-overlay");
  const tooltip = h("div", "sc-tooltip");
  main.append(plotEl, overlay, tooltip);
  const timeline = h("div", "sc-timeline");
  const play = h("button", "sc-play", "▶");
  play.type = "button";
  play.title = "play / pause";
  const track = h("div", "sc-track");
  const slider = h("input", "sc-slider");
  slider.type = "range";
  slider.min = "0";
  slider.max = "0";
  slider.step = "1";
  slider.value = "0";
  const markers = h("div", "sc-alerts");
  track.append(slider, markers);
  const epochLabel = h("span", "sc-epoch");
  timeline.append(play, track, epochLabel);
  const status = h("div", "sc-status");
  const error = h("div", "sc-error");
  root.append(top, main, timeline, status, error);
  el.append(root);

  const probe = decodeProbe(model.get("probe"));
  const checkpointPayloads = new Payloads(host, decodeCheckpoint);
  const framePayloads = new Payloads(host, decodeFrame);
  const state = {
    checkpoints: [],
    frames: new Map(), // method -> Map(index -> frame)
    position: 0,
    method: model.get("methods")[0],
    follow: true,
    selected: -1,
    timer: null,
    styleCache: new WeakMap(),
    rgbaCache: new WeakMap(),
  };

  const plot = await makePlot(plotEl);
  buildMethodBar();

  /** Checkpoint index at the slider's position (positions count the checkpoints received). */
  function currentIndex() {
    return state.checkpoints[state.position]?.index ?? -1;
  }

  function framesOf(method) {
    if (!state.frames.has(method)) state.frames.set(method, new Map());
    return state.frames.get(method);
  }

  function styleFor(checkpoint) {
    if (!state.styleCache.has(checkpoint)) {
      state.styleCache.set(checkpoint, pointStyle(probe.labels, checkpoint.pred, probe.palette));
    }
    return state.styleCache.get(checkpoint);
  }

  function backgroundFor(frame) {
    if (!frame.background) return null;
    if (!state.rgbaCache.has(frame)) {
      state.rgbaCache.set(frame, {
        ...backgroundPlacement(frame.background),
        rgba: backgroundRGBA(frame.background, probe.palette),
      });
    }
    return state.rgbaCache.get(frame);
  }

  function buildMethodBar() {
    for (const method of model.get("methods")) {
      const button = h("button", "sc-method", methodLabel(method));
      button.type = "button";
      button.dataset.method = method;
      button.addEventListener("click", () => api.setMethod(method));
      methodBar.append(button);
    }
  }

  function renderMethodBar() {
    const index = currentIndex();
    for (const button of methodBar.children) {
      const method = button.dataset.method;
      const ready = framesOf(method).has(index);
      button.classList.toggle("sc-active", method === state.method);
      button.classList.toggle("sc-pending", !ready);
      button.title = ready ? "" : `${methodLabel(method)}: this checkpoint is not projected yet`;
    }
  }

  function renderMarkers() {
    markers.replaceChildren();
    const n = state.checkpoints.length;
    for (const [index, texts] of alertsByCheckpoint(framesOf(state.method))) {
      const position = state.checkpoints.findIndex((c) => c.index === index);
      if (position < 0) continue;
      const mark = h("span", "sc-alert");
      mark.style.left = `${n > 1 ? (100 * position) / (n - 1) : 0}%`;
      mark.dataset.index = String(index);
      mark.title = texts.join("\n");
      mark.setAttribute("aria-label", `alert at checkpoint ${index}: ${texts.join("; ")}`);
      mark.addEventListener("click", () => api.setPosition(position));
      markers.append(mark);
    }
  }

  function renderStatus() {
    const s = model.get("status") ?? {};
    status.textContent = statusText(s, state.checkpoints.length);
    error.textContent = s.error ? `worker error: ${s.error}` : "";
    error.style.display = s.error ? "" : "none";
  }

  function showFrame() {
    const t0 = performance.now();
    const checkpoint = state.checkpoints[state.position];
    const frame = framesOf(state.method).get(currentIndex());
    const label = methodLabel(state.method);
    epochLabel.textContent = checkpoint
      ? `${checkpointLabel(checkpoint)} · ${state.position + 1}/${state.checkpoints.length}`
      : "no checkpoint yet";
    const inverse = model.get("inverse")[state.method];
    note.textContent = inverse === false ? `no background: ${label} has no inverse mapping` : "";
    if (!frame || !checkpoint) {
      plot.clearPoints();
      plot.setBackground(null);
      plot.setTrajectory(null);
      badge.textContent = "";
      overlay.textContent = checkpoint ? `${label}: pending for ${checkpointLabel(checkpoint)}` : "waiting for the first checkpoint";
      overlay.style.display = "";
    } else {
      overlay.style.display = "none";
      plot.setRanges(frameRanges(frame));
      plot.setBackground(backgroundFor(frame));
      plot.setPoints({ x: frame.x, y: frame.y, ...styleFor(checkpoint) });
      plot.setTrajectory(state.selected >= 0 ? trajectory(framesOf(state.method), state.selected) : null);
      badge.textContent = badgeText(frame.metrics);
    }
    renderMethodBar();
    api.lastSwitchMs = performance.now() - t0;
  }

  function setSliderMax() {
    slider.max = String(Math.max(0, state.checkpoints.length - 1));
  }

  async function syncPayloads() {
    const checkpoints = await checkpointPayloads.resolve(model.get("checkpoints"));
    state.checkpoints = [...checkpoints].sort((a, b) => a.index - b.index);
    const frames = await framePayloads.resolve(model.get("frames"));
    for (const frame of frames) framesOf(frame.method).set(frame.index, frame);
    // Colour work happens on arrival, so scrubbing only rasterises and paints.
    state.checkpoints.forEach(styleFor);
    frames.forEach(backgroundFor);
    setSliderMax();
    if (state.follow) state.position = Math.max(0, state.checkpoints.length - 1);
    slider.value = String(state.position);
    renderMarkers();
    renderStatus();
    showFrame();
  }

  function hoverAt(clientX, clientY) {
    const frame = framesOf(state.method).get(currentIndex());
    const where = frame ? plot.toData(clientX, clientY) : null;
    const i = where ? nearestPoint(frame.x, frame.y, where.x, where.y, where.kx, where.ky, HOVER_RADIUS_PX) : -1;
    if (i < 0) {
      tooltip.style.display = "none";
      plot.setHighlight(null);
      return -1;
    }
    fillTooltip(i);
    const box = main.getBoundingClientRect();
    tooltip.style.left = `${clientX - box.left + 12}px`;
    tooltip.style.top = `${clientY - box.top + 12}px`;
    tooltip.style.display = "block";
    plot.setHighlight({ x: frame.x[i], y: frame.y[i] });
    return i;
  }

  function className(c) {
    return probe.classNames[c] ?? String(c);
  }

  function fillTooltip(i) {
    const checkpoint = state.checkpoints[state.position];
    const lines = [`sample ${i}`, `label ${className(probe.labels[i])}`];
    if (checkpoint?.pred) {
      const conf = checkpoint.conf ? ` (${Math.round((100 * checkpoint.conf[i]) / 255)}%)` : "";
      lines.push(`prediction ${className(checkpoint.pred[i])}${conf}`);
    }
    tooltip.replaceChildren(...lines.map((t) => h("div", "sc-tip-line", t)));
    if (probe.thumbs) tooltip.prepend(thumbnail(i));
  }

  function thumbnail(i) {
    const [, rows, cols, channels = 1] = probe.thumbs.shape;
    const canvas = h("canvas", "sc-thumb");
    canvas.width = cols;
    canvas.height = rows;
    const ctx = canvas.getContext?.("2d");
    if (ctx) {
      const img = ctx.createImageData(cols, rows);
      const base = i * rows * cols * channels;
      for (let p = 0; p < rows * cols; p++) {
        for (let k = 0; k < 3; k++) {
          img.data[4 * p + k] = probe.thumbs.data[base + p * channels + (channels === 3 ? k : 0)];
        }
        img.data[4 * p + 3] = 255;
      }
      ctx.putImageData(img, 0, 0);
    }
    return canvas;
  }

  const api = {
    plot,
    lastSwitchMs: 0,
    get position() {
      return state.position;
    },
    get method() {
      return state.method;
    },
    get selected() {
      return state.selected;
    },
    /** How many frames of `method` the browser holds. */
    frameCount(method = state.method) {
      return framesOf(method).size;
    },
    /** The frame on screen (null while pending). */
    frameAt() {
      return framesOf(state.method).get(currentIndex()) ?? null;
    },
    setPosition(index) {
      const last = state.checkpoints.length - 1;
      state.position = Math.max(0, Math.min(last, index));
      state.follow = state.position === last;
      slider.value = String(state.position);
      showFrame();
    },
    setMethod(method) {
      state.method = method;
      renderMarkers();
      showFrame();
    },
    togglePlay() {
      if (state.timer) {
        clearInterval(state.timer);
        state.timer = null;
        play.textContent = "▶";
        return;
      }
      play.textContent = "⏸";
      state.timer = setInterval(() => {
        const n = state.checkpoints.length;
        if (n) api.setPosition((state.position + 1) % n);
      }, PLAY_INTERVAL_MS);
    },
    hoverAt,
    select(point) {
      state.selected = state.selected === point ? -1 : point;
      showFrame();
    },
    refresh: syncPayloads,
    destroy() {
      if (state.timer) clearInterval(state.timer);
      model.off("change:checkpoints", onData);
      model.off("change:frames", onData);
      model.off("change:status", renderStatus);
      plot.destroy();
      root.remove();
    },
  };

  slider.addEventListener("input", () => api.setPosition(Number(slider.value)));
  play.addEventListener("click", () => api.togglePlay());
  let pending = null;
  main.addEventListener("mousemove", (event) => {
    if (pending) return;
    pending = requestAnimationFrame(() => {
      pending = null;
      hoverAt(event.clientX, event.clientY);
    });
  });
  main.addEventListener("mouseleave", () => {
    tooltip.style.display = "none";
    plot.setHighlight(null);
  });
  main.addEventListener("click", (event) => {
    const i = hoverAt(event.clientX, event.clientY);
    if (i >= 0) api.select(i);
  });

  // Payload resolution is async; chain updates so they apply in arrival order.
  let chain = Promise.resolve();
  const onData = () => {
    chain = chain.then(syncPayloads).catch((e) => {
      error.textContent = `widget error: ${e.message}`;
      error.style.display = "";
    });
    return chain;
  };
  model.on("change:checkpoints", onData);
  model.on("change:frames", onData);
  model.on("change:status", renderStatus);
  await onData();
  return api;
}
