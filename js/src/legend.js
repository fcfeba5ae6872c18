// The class legend: a swatch in the shared palette and the class name for every class. Clicking
// a class hides it (click again to show it); shift-click highlights it (the others are drawn
// pale). The same legend appears in Jupyter and in exported HTML files.

import { h } from "./dom.js";

/** Per-point flags from per-class ones: 1 where the point's label is in `classes`, or null
 * when `classes` is empty (nothing to flag). */
export function classMask(labels, classes) {
  if (!classes.size) return null;
  const mask = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) mask[i] = classes.has(labels[i]) ? 1 : 0;
  return mask;
}

/** Points per class. */
export function classCounts(labels, nClasses) {
  const counts = new Array(nClasses).fill(0);
  for (const label of labels) counts[label]++;
  return counts;
}

export function createLegend(probe, onChange) {
  const el = h("div", "sc-legend");
  const hidden = new Set();
  const highlighted = new Set();
  const counts = classCounts(probe.labels, probe.nClasses);
  const items = [];
  for (let c = 0; c < probe.nClasses; c++) {
    const item = h("button", "sc-class");
    item.type = "button";
    item.dataset.class = String(c);
    const swatch = h("span", "sc-swatch");
    const p = probe.palette;
    swatch.style.background = `rgb(${p[3 * c]}, ${p[3 * c + 1]}, ${p[3 * c + 2]})`;
    item.append(swatch, h("span", "sc-class-name", `${probe.classNames[c] ?? c} (${counts[c]})`));
    item.title = "click: hide / show · shift-click: highlight";
    item.addEventListener("click", (event) => toggle(c, event.shiftKey));
    items.push(item);
    el.append(item);
  }

  function render() {
    items.forEach((item, c) => {
      item.classList.toggle("sc-hidden", hidden.has(c));
      item.classList.toggle("sc-highlighted", highlighted.has(c));
      item.setAttribute("aria-pressed", String(!hidden.has(c)));
    });
  }

  function toggle(c, highlight) {
    const set = highlight ? highlighted : hidden;
    if (set.has(c)) set.delete(c);
    else set.add(c);
    render();
    onChange();
  }

  return {
    el,
    toggle,
    /** Per-point visibility (null = all visible). */
    visible() {
      const mask = classMask(probe.labels, hidden);
      return mask && mask.map((v) => 1 - v);
    },
    /** Per-point highlight (null = no class highlighted). */
    highlighted: () => classMask(probe.labels, highlighted),
    hiddenClasses: () => [...hidden],
  };
}
