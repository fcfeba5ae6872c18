// The metrics timeline under the scrubber: one recorded scalar (validation loss by default, any
// other the user picks) and the shown method's T(15) and PPR per checkpoint, alert markers with
// their explanations, and a marker where a value is missing (NaN/inf). Clicking the timeline
// moves the scrubber. Positions line up with the slider's: checkpoint k of n sits at k/(n-1).

import { alertText } from "./data.js";
import { h, setText, SVG } from "./dom.js";

const HEIGHT = 56;
const NAMES = {
  val_loss: "validation loss",
  train_loss: "training loss",
  val_acc: "validation accuracy",
  train_acc: "training accuracy",
  loss: "loss",
};

/** What the timeline calls a scalar: "validation loss" for val_loss, else its own name. */
export function scalarLabel(name) {
  return NAMES[name] ?? name;
}

/** Scalar names recorded on any checkpoint; val_loss first when present. */
export function scalarNames(checkpoints) {
  const names = new Set();
  for (const c of checkpoints) for (const k of Object.keys(c.scalars)) names.add(k);
  return [...names].sort((a, b) => (a === "val_loss" ? -1 : b === "val_loss" ? 1 : a.localeCompare(b)));
}

const valueOf = (v) => (typeof v === "number" && Number.isFinite(v) ? v : NaN);

/** Per-checkpoint series (NaN where missing) for `scalar` and the frames of one method
 * (`frames`: Map index -> {metrics, alerts}), plus alert and missing-value positions. */
export function timelineSeries(checkpoints, frames, scalar) {
  const n = checkpoints.length;
  const series = { n, scalar: new Float64Array(n), trust: new Float64Array(n), ppr: new Float64Array(n) };
  series.alerts = [];
  series.missing = [];
  checkpoints.forEach((c, k) => {
    const recorded = scalar != null && scalar in c.scalars;
    series.scalar[k] = recorded ? valueOf(c.scalars[scalar]) : NaN;
    if (recorded && Number.isNaN(series.scalar[k])) series.missing.push(k);
    const frame = frames.get(c.index);
    series.trust[k] = valueOf(frame?.metrics.trustworthiness);
    series.ppr[k] = valueOf(frame?.metrics.ppr);
    if (frame?.alerts.length) series.alerts.push({ position: k, texts: frame.alerts.map(alertText) });
  });
  return series;
}

/** Finite [lo, hi] of `values` (a unit range around a constant; null when none is finite). */
export function valueRange(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (lo > hi) return null;
  return lo === hi ? [lo - 0.5, hi + 0.5] : [lo, hi];
}

/** SVG path data through the finite values (x in 0..100, y in 0..HEIGHT, top = hi); a missing
 * value breaks the line. */
export function linePath(values, range) {
  if (!range) return "";
  const n = values.length;
  const [lo, hi] = range;
  let d = "";
  let pen = false;
  for (let k = 0; k < n; k++) {
    const v = values[k];
    if (!Number.isFinite(v)) {
      pen = false;
      continue;
    }
    const x = n > 1 ? (100 * k) / (n - 1) : 50;
    const y = 4 + (HEIGHT - 8) * (1 - (v - lo) / (hi - lo));
    d += `${pen ? "L" : "M"}${x.toFixed(2)} ${y.toFixed(2)} `;
    pen = true;
  }
  return d.trim();
}

const fmt = (v) => (Number.isFinite(v) ? (Math.abs(v) >= 1000 || Math.abs(v) < 0.01 ? v.toExponential(2) : v.toFixed(3)) : "missing");

export function createTimeline(onPick) {
  const el = h("div", "sc-metrics");
  const svg = h("svg", "sc-chart", null, SVG);
  svg.setAttribute("viewBox", `0 0 100 ${HEIGHT}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const lines = {};
  for (const key of ["trust", "ppr", "scalar"]) {
    lines[key] = h("path", `sc-line sc-line-${key}`, null, SVG);
    svg.append(lines[key]);
  }
  const cursor = h("line", "sc-cursor", null, SVG);
  cursor.setAttribute("y1", "0");
  cursor.setAttribute("y2", String(HEIGHT));
  svg.append(cursor);
  const marks = h("div", "sc-marks");
  const chart = h("div", "sc-chart-box");
  chart.append(svg, marks);
  const picker = h("select", "sc-scalar");
  picker.title = "scalar drawn on the timeline";
  const readout = h("div", "sc-readout");
  const legend = h("div", "sc-metrics-legend");
  legend.append(picker, readout);
  el.append(chart, legend);
  let series = null;
  let chosen = null;

  chart.addEventListener("click", (event) => {
    if (!series?.n) return;
    const box = chart.getBoundingClientRect();
    const fraction = box.width ? (event.clientX - box.left) / box.width : 0;
    onPick(Math.round(Math.max(0, Math.min(1, fraction)) * (series.n - 1)));
  });
  picker.addEventListener("change", () => {
    chosen = picker.value;
    onPick(null);
  });

  function marker(className, position, text) {
    const mark = h("span", className);
    mark.style.left = `${series.n > 1 ? (100 * position) / (series.n - 1) : 50}%`;
    mark.title = text;
    mark.setAttribute("aria-label", text);
    mark.addEventListener("click", (event) => {
      event.stopPropagation();
      onPick(position);
    });
    return mark;
  }

  function move(position) {
    const x = series.n > 1 ? (100 * position) / (series.n - 1) : 50;
    cursor.setAttribute("x1", String(x));
    cursor.setAttribute("x2", String(x));
    const at = (values) => fmt(values[position]);
    const parts = chosen == null ? [] : [`${scalarLabel(chosen)} ${at(series.scalar)}`];
    parts.push(`T(15) ${at(series.trust)}`, `PPR ${at(series.ppr)}`);
    setText(readout, series.n ? parts.join(" · ") : "");
  }

  return {
    el,
    /** The scalar chosen (null when the run records none). */
    get scalar() {
      return chosen;
    },
    /** Offer the run's scalars in the picker; keeps the user's choice. */
    setScalars(names) {
      if (chosen == null || !names.includes(chosen)) chosen = names[0] ?? null;
      const same = [...picker.options].map((o) => o.value).join() === names.join();
      if (!same) {
        picker.replaceChildren(...names.map((n) => Object.assign(h("option", null, scalarLabel(n)), { value: n })));
      }
      picker.value = chosen ?? "";
      picker.style.display = names.length ? "" : "none";
    },
    /** Redraw from timelineSeries(...) with the scrubber at `position`. */
    update(next, position, checkpointIndexOf) {
      series = next;
      lines.scalar.setAttribute("d", linePath(series.scalar, valueRange(series.scalar)));
      lines.trust.setAttribute("d", linePath(series.trust, [0, 1]));
      lines.ppr.setAttribute("d", linePath(series.ppr, [0, 1]));
      marks.replaceChildren(
        ...series.alerts.map((a) => {
          const mark = marker("sc-alert", a.position, a.texts.join("\n"));
          mark.dataset.index = String(checkpointIndexOf(a.position));
          return mark;
        }),
        ...series.missing.map((k) => marker("sc-missing", k, `${scalarLabel(chosen)} is missing (NaN/inf) here`)),
      );
      move(position);
    },
    /** Move the cursor and the readout to `position` (the series drawn stay). */
    move,
  };
}
