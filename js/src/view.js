// The widget view: the controls (method toggle, fit, lasso/box selection, legend, slider, play,
// metrics timeline), the status line and the tooltip, and the glue that turns the synced state
// into plot updates. Everything runs on data already in the browser, so it keeps working while
// the kernel is busy training, in a saved notebook and in an exported HTML file.

import { badgeText, checkpointLabel, decodeProbe, frameRanges, methodLabel, nearestPoint, statusText } from "./data.js";
import { h, setText } from "./dom.js";
import { FrameStore } from "./frames.js";
import { createLegend } from "./legend.js";
import { createSelector, pointsInPolygon } from "./selection.js";
import { createTimeline, scalarNames, timelineSeries } from "./timeline.js";
import { fillTooltip } from "./tooltip.js";

const PLAY_INTERVAL_MS = 350;
const idle = globalThis.requestIdleCallback?.bind(globalThis) ?? ((callback) => setTimeout(callback, 1));
const cancelIdle = globalThis.cancelIdleCallback?.bind(globalThis) ?? clearTimeout;
const HOVER_RADIUS_PX = 8;
/** Trajectories drawn for a selection at most (the first ones by sample number). */
export const MAX_TRAILS = 100;

function button(className, text, title) {
  const b = h("button", className, text);
  b.type = "button";
  if (title) b.title = title;
  return b;
}

/** Builds the DOM inside `el` and keeps it in sync with `model`. `makePlot(container)` returns
 * the plot adapter (Bokeh in the browser, a fake in unit tests); `frameWindow` bounds the
 * decoded frames kept. Returns the view's API. */
export async function createView({ model, el, host, makePlot, frameWindow }) {
  const probe = decodeProbe(model.get("probe"));
  const store = new FrameStore(host, probe, frameWindow);
  const state = { position: 0, step: 1, method: model.get("methods")[0], follow: true, timer: null, autoFit: true };
  state.selection = [...(model.get("selection") ?? [])];
  let trails = { key: "", paths: null };

  const root = h("div", "sc-root");
  const top = h("div", "sc-top");
  const methodBar = h("div", "sc-methods");
  const fitButton = button("sc-fit sc-active", "fit", "fit the view to this frame's points (and keep fitting)");
  const tools = h("div", "sc-tools");
  const modeButtons = ["lasso", "box"].map((mode) => {
    const b = button("sc-mode", mode, `${mode} selection: drag on the plot`);
    b.dataset.mode = mode;
    return b;
  });
  const clearButton = button("sc-clear", "clear", "clear the selection");
  tools.append(fitButton, ...modeButtons, clearButton);
  const badge = h("span", "sc-badge");
  const note = h("span", "sc-note");
  top.append(methodBar, tools, badge, note);
  const legend = createLegend(probe, () => {
    lookChanged();
    showFrame();
  });
  const main = h("div", "sc-main");
  const plotEl = h("div", "sc-plot");
  const overlay = h("div", "sc-overlay");
  const tooltip = h("div", "sc-tooltip");
  main.append(plotEl, overlay, tooltip);
  const scrubber = h("div", "sc-timeline");
  const play = button("sc-play", "▶", "play / pause");
  const track = h("div", "sc-track");
  const slider = h("input", "sc-slider");
  Object.assign(slider, { type: "range", min: "0", max: "0", step: "1", value: "0" });
  const timeline = createTimeline((position) => (position == null ? renderTimeline() : api.setPosition(position)));
  track.append(slider, timeline.el);
  const epochLabel = h("span", "sc-epoch");
  scrubber.append(play, track, epochLabel);
  const selectionNote = h("div", "sc-selection");
  const status = h("div", "sc-status");
  const error = h("div", "sc-error");
  root.append(top, legend.el, main, scrubber, selectionNote, status, error);
  el.append(root);

  const plot = await makePlot(plotEl);
  plot.onUserRange?.(() => {
    state.autoFit = false;
    fitButton.classList.remove("sc-active");
  });
  const selector = createSelector(main, (x, y) => plot.toData(x, y, false), (polygon) => {
    const frame = currentFrame();
    if (!frame) return;
    const visible = legend.visible();
    const inside = pointsInPolygon(frame.xy, polygon);
    api.setSelection(visible ? inside.filter((i) => visible[i]) : inside);
  });
  for (const method of model.get("methods")) {
    const b = button("sc-method", methodLabel(method));
    b.dataset.method = method;
    b.addEventListener("click", () => api.setMethod(method));
    methodBar.append(b);
  }

  const checkpointAt = () => store.checkpoints[state.position] ?? null;
  const currentIndex = () => checkpointAt()?.index ?? -1;
  const currentFrame = () => store.frame(state.method, currentIndex());

  function renderMethodBar() {
    for (const b of methodBar.children) {
      const ready = store.has(b.dataset.method, currentIndex());
      b.classList.toggle("sc-active", b.dataset.method === state.method);
      b.classList.toggle("sc-pending", !ready);
      b.title = ready ? "" : `${methodLabel(b.dataset.method)}: this checkpoint is not projected yet`;
    }
  }

  // The timeline's lines and markers change only when frames or checkpoints arrive or the
  // method or scalar changes; a switch alone moves its cursor.
  let timelineDrawn = "";
  const timelineKey = () => [state.method, store.checkpoints.length, store.framesOf(state.method).size, timeline.scalar].join("|");
  function renderTimeline() {
    if (timelineKey() === timelineDrawn) {
      timeline.move(state.position);
      return;
    }
    timeline.setScalars(scalarNames(store.checkpoints));
    const series = timelineSeries(store.checkpoints, store.framesOf(state.method), timeline.scalar);
    timeline.update(series, state.position, (k) => store.checkpoints[k].index);
    timelineDrawn = timelineKey();
  }

  function renderStatus() {
    const s = model.get("status") ?? {};
    status.textContent = statusText(s, store.checkpoints.length);
    error.textContent = s.error ? `worker error: ${s.error}` : "";
    error.style.display = s.error ? "" : "none";
  }

  // How points look apart from their frame (hidden classes, pale ones), computed once per change
  // of the legend or the selection; `version` tells rasters of different looks apart.
  const look = { version: 0, visible: undefined, faded: undefined };
  function lookChanged() {
    look.version++;
    look.visible = undefined;
  }

  /** What the plot draws for checkpoint `position` of the shown method, and the key its raster
   * is kept under; null while that frame is pending. */
  function pointsAt(position) {
    const checkpoint = store.checkpoints[position];
    const frame = checkpoint && store.frame(state.method, checkpoint.index);
    if (!frame) return null;
    if (look.visible === undefined) Object.assign(look, { visible: legend.visible(), faded: faded() });
    return {
      frame,
      key: `${state.method}|${checkpoint.index}|${look.version}`,
      style: { xy: frame.xy, ...store.style(checkpoint), visible: look.visible, faded: look.faded },
    };
  }

  // In idle time after a switch, decode and rasterise the neighbouring frames (the next one in
  // the direction of scrubbing first), so that moving on to them is one image upload.
  let prefetching = null;
  function prefetchNeighbours() {
    if (prefetching != null) cancelIdle(prefetching);
    if (!plot.prerender) return;
    const queue = [state.position + state.step, state.position - state.step];
    const next = () => {
      const drawn = pointsAt(queue.shift());
      if (drawn) plot.prerender(drawn.style, drawn.key, state.autoFit ? frameRanges(drawn.frame) : null);
      prefetching = queue.length ? idle(next) : null;
    };
    prefetching = idle(next);
  }

  /** Points drawn pale: outside the selection, or outside the highlighted classes. */
  function faded() {
    const highlighted = legend.highlighted();
    if (!state.selection.length) return highlighted && highlighted.map((v) => 1 - v);
    const mask = new Uint8Array(probe.n).fill(1);
    for (const i of state.selection) mask[i] = highlighted && !highlighted[i] ? 1 : 0;
    return mask;
  }

  function trajectories() {
    if (!state.selection.length) return null;
    const key = `${state.method}|${state.selection.join()}|${store.framesOf(state.method).size}`;
    if (trails.key !== key) trails = { key, paths: store.trajectories(state.method, state.selection.slice(0, MAX_TRAILS)) };
    return trails.paths;
  }

  function showFrame() {
    const t0 = performance.now();
    const checkpoint = checkpointAt();
    const drawn = pointsAt(state.position);
    const frame = drawn?.frame;
    const label = methodLabel(state.method);
    const n = store.checkpoints.length;
    setText(epochLabel, checkpoint ? `${checkpointLabel(checkpoint)} · ${state.position + 1}/${n}` : "no checkpoint yet");
    const notes = [];
    if (model.get("inverse")[state.method] === false) notes.push(`no background: ${label} has no inverse mapping`);
    if (!frame || !checkpoint) {
      plot.clearPoints();
      plot.setBackground(null);
      plot.setTrajectories(null);
      setText(badge, "");
      setText(overlay, checkpoint ? `${label}: pending for ${checkpointLabel(checkpoint)}` : "waiting for the first checkpoint");
      overlay.style.display = "";
    } else {
      overlay.style.display = "none";
      const [x0, x1, y0, y1] = frame.bounds ?? [0, 1, 0, 1];
      if (x0 === x1 && y0 === y1) notes.push(`all ${frame.n - frame.missing} points lie on one spot (collapsed)`);
      if (frame.missing) notes.push(`${frame.missing} point${frame.missing === 1 ? " has" : "s have"} no coordinates (NaN/inf) in this frame`);
      if (state.autoFit) plot.setRanges(frameRanges(frame));
      plot.setBackground(frame.background?.rgba ?? null);
      plot.setPoints(drawn.style, drawn.key);
      plot.setTrajectories(trajectories());
      setText(badge, badgeText(frame.metrics));
    }
    setText(note, notes.join(" · "));
    renderMethodBar();
    renderTimeline();
    api.lastSwitchMs = performance.now() - t0;
    if (frame) prefetchNeighbours();
  }

  function renderSelection() {
    const k = state.selection.length;
    const drawn = Math.min(k, MAX_TRAILS);
    selectionNote.textContent = k
      ? `${k} selected · trajectories of ${drawn === k ? "all" : `the first ${drawn}`} · Python: .selection`
      : "";
  }

  async function syncPayloads() {
    await store.sync(model.get("checkpoints"), model.get("frames"));
    slider.max = String(Math.max(0, store.checkpoints.length - 1));
    if (state.follow) state.position = Math.max(0, store.checkpoints.length - 1);
    slider.value = String(state.position);
    renderStatus();
    showFrame();
  }

  function hoverAt(clientX, clientY) {
    const frame = currentFrame();
    const where = frame ? plot.toData(clientX, clientY) : null;
    const i = where ? nearestPoint(frame.xy, where.x, where.y, where.kx, where.ky, HOVER_RADIUS_PX, legend.visible()) : -1;
    if (i < 0) {
      tooltip.style.display = "none";
      plot.setHighlight(null);
      return -1;
    }
    fillTooltip(tooltip, probe, checkpointAt(), i);
    const box = main.getBoundingClientRect();
    tooltip.style.left = `${clientX - box.left + 12}px`;
    tooltip.style.top = `${clientY - box.top + 12}px`;
    tooltip.style.display = "block";
    plot.setHighlight({ x: frame.xy[2 * i], y: frame.xy[2 * i + 1] });
    return i;
  }

  const api = {
    plot,
    legend,
    timeline,
    lastSwitchMs: 0,
    get position() {
      return state.position;
    },
    get method() {
      return state.method;
    },
    get selection() {
      return [...state.selection];
    },
    /** How many frames of `method` the browser holds (as payloads), and how many are decoded. */
    frameCount: (method = state.method) => store.framesOf(method).size,
    get decodedCount() {
      return store.decoded.size;
    },
    /** Whether neighbouring frames are still being prepared in idle time. */
    get preparing() {
      return prefetching != null;
    },
    /** The frame on screen (null while pending). */
    frameAt: currentFrame,
    setPosition(index) {
      const last = store.checkpoints.length - 1;
      const position = Math.max(0, Math.min(last, index));
      if (position !== state.position) state.step = position > state.position ? 1 : -1;
      state.position = position;
      state.follow = state.position === last;
      slider.value = String(state.position);
      showFrame();
    },
    setMethod(method) {
      state.method = method;
      showFrame();
    },
    /** Fit the view to the frame's points, and keep fitting on every frame switch. */
    fit() {
      state.autoFit = true;
      fitButton.classList.add("sc-active");
      showFrame();
    },
    setSelectMode(mode) {
      selector.setMode(selector.mode === mode ? null : mode);
      for (const b of modeButtons) b.classList.toggle("sc-active", b.dataset.mode === selector.mode);
    },
    /** Select these probe indices (sorted, unique) and send them to Python. */
    setSelection(indices, sync = true) {
      state.selection = [...new Set(indices)].sort((a, b) => a - b);
      lookChanged();
      if (sync) {
        model.set("selection", state.selection);
        model.save_changes();
      }
      renderSelection();
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
        const n = store.checkpoints.length;
        if (n) api.setPosition((state.position + 1) % n);
      }, PLAY_INTERVAL_MS);
    },
    hoverAt,
    /** Click on a point: select it alone (again: clear). */
    select(point) {
      api.setSelection(state.selection.length === 1 && state.selection[0] === point ? [] : [point]);
    },
    refresh: () => onData(),
    destroy() {
      if (state.timer) clearInterval(state.timer);
      if (prefetching != null) cancelIdle(prefetching);
      model.off("change:checkpoints", onData);
      model.off("change:frames", onData);
      model.off("change:status", renderStatus);
      model.off("change:selection", onSelection);
      plot.destroy();
      root.remove();
    },
  };

  slider.addEventListener("input", () => api.setPosition(Number(slider.value)));
  play.addEventListener("click", () => api.togglePlay());
  fitButton.addEventListener("click", () => api.fit());
  for (const b of modeButtons) b.addEventListener("click", () => api.setSelectMode(b.dataset.mode));
  clearButton.addEventListener("click", () => api.setSelection([]));
  let pending = null;
  main.addEventListener("mousemove", (event) => {
    if (pending || selector.mode) return;
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
    if (selector.mode) return;
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
  const onSelection = () => api.setSelection(model.get("selection") ?? [], false);
  model.on("change:checkpoints", onData);
  model.on("change:frames", onData);
  model.on("change:status", renderStatus);
  model.on("change:selection", onSelection);
  renderSelection();
  await onData();
  return api;
}
