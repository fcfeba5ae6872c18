// The BokehJS side: load BokehJS once per page from the kernel's shared copy (no CDN), embed
// the figure Python built, and expose the few operations the view needs. The view talks only to
// this small interface, so unit tests substitute a recording fake for it.
//
// Points are rasterised into an RGBA image at the plot's pixel size (re-done when the ranges or
// the size change; js/src/raster.js) and drawn by Bokeh's image_rgba glyph.

import { setText } from "./dom.js";
import { RasterCache, rasterizePoints } from "./raster.js";

const LOADING = Symbol.for("sentrycam_widget.bokeh_loading");
/** Point rasters kept (the frame on screen, its prerendered neighbours, the one before). */
export const RASTER_CACHE = 4;

/** Make `window.Bokeh` (version `version`) available, injecting the source that
 * `loadSource()` resolves to once per page. */
export function ensureBokeh(loadSource, version) {
  const g = globalThis;
  if (g.Bokeh?.version === version) return Promise.resolve(g.Bokeh);
  if (g[LOADING]) return g[LOADING];
  g[LOADING] = (async () => {
    const source = await loadSource();
    if (!source) throw new Error(`BokehJS ${version} is not on this page and the widget carries no copy`);
    // An AMD loader (classic notebook's require.js) would swallow the UMD bundle: hide it.
    const define = g.define;
    g.define = undefined;
    try {
      const script = document.createElement("script");
      script.textContent = source;
      document.head.appendChild(script);
    } finally {
      g.define = define;
    }
    if (g.Bokeh?.version === version) return g.Bokeh;
    throw new Error(`loading BokehJS ${version} failed (found ${g.Bokeh?.version ?? "none"})`);
  })();
  g[LOADING].catch(() => {
    g[LOADING] = null; // a later widget may carry a copy
  });
  return g[LOADING];
}

/** A Bokeh ndarray over `data`'s bytes: given the ArrayBuffer, not the typed array, Bokeh wraps
 * the memory instead of copying it (a copy cost 2 ms per switch at 50,000 points). */
function ndarrayOf(Bokeh, data, shape) {
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
  return Bokeh.require("core/util/ndarray").ndarray(whole ? data.buffer : data, { shape, dtype: "uint32" });
}

/** Replace a source's data without Bokeh comparing the new image with the old one pixel by
 * pixel (a new image is always a change here). */
function setData(source, data) {
  source.setv({ data }, { check_eq: false });
}

/** Bokeh's image glyph reads its canvas back (getImageData) before writing a new image into
 * it; write the image straight in instead (the same pixels, one 1 MB read-back less per
 * switch). Left as Bokeh has it if its internals differ. */
function writeImagesDirectly(plotView, sources) {
  for (const view of plotView.renderer_views.values()) {
    const glyph = view.glyph;
    if (!sources.includes(view.model.data_source)) continue;
    if (typeof glyph?._set_image_data_from_buffer !== "function" || typeof glyph._get_or_create_canvas !== "function") continue;
    glyph._set_image_data_from_buffer = function (i, buf8) {
      const canvas = this._get_or_create_canvas(i);
      const image = new ImageData(buf8, this.image_width[i], this.image_height[i]);
      canvas.getContext("2d").putImageData(image, 0, 0);
      this.image_data[i] = canvas;
    };
  }
}

/** Bokeh clears a canvas layer before each paint with the layer's half-pixel offset applied,
 * so the clear misses a strip along two edges and Chromium cannot drop the drawing it has
 * recorded for earlier paints: without a chance to show a frame in between (back-to-back
 * switches), every 30th paint drew the 29 before it again (20-40 ms). Clearing the whole
 * canvas in device pixels lets it drop them. Left as Bokeh has it if its internals differ. */
function clearWholeLayers(canvasView) {
  for (const layer of [canvasView?.primary, canvasView?.overlays]) {
    if (typeof layer?.undo_transform !== "function" || typeof layer.clear !== "function") continue;
    if (typeof layer.ctx?.canvas?.width !== "number") continue; // not a 2-D canvas (SVG output)
    layer.clear = function () {
      this.undo_transform((ctx) => ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height));
    };
  }
}

/** Bokeh rewrites each renderer's position stylesheet at every paint, with the same text when
 * nothing moved, and the browser then parses it and works out the page's style again before the
 * paint can go on. Write only text that changed. Left as Bokeh has it if its internals differ. */
function keepUnchangedStyles(plotView) {
  for (const view of plotView.renderer_views.values()) {
    const sheet = view.position;
    if (typeof sheet?._update !== "function" || sheet.el?.tagName !== "STYLE") continue;
    sheet._update = function (css) {
      setText(this.el, css);
    };
  }
}

/** Embed the figure (`item` = bokeh.embed.json_item) into `container`; returns the adapter. */
export async function createBokehPlot(container, item, Bokeh) {
  const views = await Bokeh.embed.embed_item(item, container);
  const plotView = [...views._roots][0];
  const doc = plotView.model.document;
  const model = (name) => doc.get_model_by_name(name);
  const points = model("points");
  const background = model("background");
  const trail = model("trajectory");
  const vertices = model("trajectory_points");
  const highlight = model("highlight");
  const xRange = model("x_range");
  const yRange = model("y_range");
  writeImagesDirectly(plotView, [points, background]);
  clearWholeLayers(plotView.canvas_view);
  keepUnchangedStyles(plotView);
  let current = null;
  let currentKey = null;
  // Rasters of recently drawn or prerendered frames; the one Bokeh holds is never written again.
  const rasters = new RasterCache(RASTER_CACHE);
  let drawnFor = "";
  let trailsShown = null;

  const pixelSize = () => {
    const ratio = globalThis.devicePixelRatio || 1;
    const { width, height } = plotView.frame.bbox;
    return [Math.max(1, Math.round(width * ratio)), Math.max(1, Math.round(height * ratio)), ratio];
  };
  const currentRanges = () => [xRange.start, xRange.end, yRange.start, yRange.end];
  const viewKey = (ranges = currentRanges()) => [...ranges, ...pixelSize()].join();

  /** The raster of `style` over `ranges`; `key` names the point set and its look (null: not
   * cached). */
  function raster(style, key, ranges) {
    const [width, height, ratio] = pixelSize();
    const draw = (buffer) => rasterizePoints(style, ranges, width, height, buffer, ratio);
    return rasters.get(key == null ? null : `${key}|${viewKey(ranges)}`, width * height, draw);
  }

  function drawPoints() {
    if (!current) {
      points.data = { image: [], x: [], y: [], dw: [], dh: [] };
      rasters.show(null);
      return;
    }
    const ranges = currentRanges();
    const [width, height] = pixelSize();
    const image = raster(current, currentKey, ranges);
    drawnFor = viewKey(ranges);
    rasters.show(image);
    setData(points, {
      image: [ndarrayOf(Bokeh, image, [height, width])],
      x: [ranges[0]],
      y: [ranges[2]],
      dw: [ranges[1] - ranges[0]],
      dh: [ranges[3] - ranges[2]],
    });
  }

  let queued = false;
  const redrawSoon = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      if (current && viewKey() !== drawnFor) drawPoints();
    });
  };
  let settingRanges = false;
  let onUserRange = () => {};
  const rangeChanged = () => {
    if (!settingRanges) onUserRange();
    redrawSoon();
  };
  xRange.connect(xRange.change, rangeChanged);
  yRange.connect(yRange.change, rangeChanged);
  return {
    plotView,
    /** Draw `style` (xy, labels, predictions, colours, visible, faded); `key` names the point
     * set and its look so its raster is reused (see prerender). */
    setPoints(style, key = null) {
      current = style;
      currentKey = key;
      drawPoints();
    },
    /** Rasterise `style` over `ranges` ahead of time (in idle time), so that setPoints with the
     * same key and ranges only uploads it. */
    prerender(style, key, ranges = null) {
      raster(style, key, ranges ?? currentRanges());
    },
    /** Rasters made so far, and how many are kept (for tests and benchmarks). */
    get rasterStats() {
      return { made: rasters.made, kept: rasters.size };
    },
    clearPoints() {
      current = null;
      currentKey = null;
      drawPoints();
    },
    setBackground(bg) {
      if (!bg) {
        background.data = { image: [], x: [], y: [], dw: [], dh: [] };
        return;
      }
      const image = new Uint32Array(bg.rgba.buffer, bg.rgba.byteOffset, bg.rgba.byteLength / 4);
      setData(background, {
        image: [ndarrayOf(Bokeh, image, [bg.rows, bg.cols])],
        x: [bg.x],
        y: [bg.y],
        dw: [bg.dw],
        dh: [bg.dh],
      });
    },
    setRanges([x0, x1, y0, y1]) {
      settingRanges = true;
      try {
        // the toolbar's reset goes back to this view
        xRange.setv({ start: x0, end: x1, reset_start: x0, reset_end: x1 });
        yRange.setv({ start: y0, end: y1, reset_start: y0, reset_end: y1 });
      } finally {
        settingRanges = false;
      }
    },
    /** `callback()` when the user pans or zooms (not when setRanges moves the view). */
    onUserRange(callback) {
      onUserRange = callback;
    },
    /** Paths `{xs: [Float32Array], ys: [...]}` (one per point), or null to clear. */
    setTrajectories(paths) {
      if (paths === trailsShown) return; // the same paths (or none again): nothing to change
      trailsShown = paths;
      trail.data = paths ? { xs: paths.xs, ys: paths.ys } : { xs: [], ys: [] };
      const flat = (columns) => Float32Array.from(columns.flatMap((c) => [...c]));
      vertices.data = paths ? { x: flat(paths.xs), y: flat(paths.ys) } : { x: [], y: [] };
    },
    setHighlight(point) {
      highlight.data = point ? { x: [point.x], y: [point.y] } : { x: [], y: [] };
    },
    /** Data coordinates and pixels-per-unit under a client (mouse) position; null outside the
     * plot area unless `inside` is false. */
    toData(clientX, clientY, inside = true) {
      const rect = plotView.canvas_view.el.getBoundingClientRect();
      const sx = clientX - rect.left;
      const sy = clientY - rect.top;
      const { bbox, x_scale, y_scale } = plotView.frame;
      const out = sx < bbox.left || sx > bbox.right || sy < bbox.top || sy > bbox.bottom;
      if (inside && out) return null;
      const kx = bbox.width / Math.abs(xRange.end - xRange.start);
      const ky = bbox.height / Math.abs(yRange.end - yRange.start);
      return { x: x_scale.invert(sx), y: y_scale.invert(sy), kx, ky };
    },
    /** Client (page) position of a data point; inverse of toData. */
    toClient(x, y) {
      const rect = plotView.canvas_view.el.getBoundingClientRect();
      const { x_scale, y_scale } = plotView.frame;
      return { x: rect.left + x_scale.compute(x), y: rect.top + y_scale.compute(y) };
    },
    /** Paint now (used by the benchmark to time a whole frame switch). */
    repaint() {
      plotView.repaint();
    },
    destroy() {
      for (const view of views._roots) view.remove();
    },
  };
}
