// Lasso and box selection in the plot. In "lasso" or "box" mode a drag on the plot draws the
// shape on an SVG overlay; on release the points of the shown frame inside it become the
// selection (the view syncs it to Python as the `selection` trait). Point-in-polygon is pure.

import { h, SVG } from "./dom.js";

/** Indices of the finite points (xy[2i], xy[2i + 1]) inside `polygon` = [[x, y], ...] (even-odd
 * rule). */
export function pointsInPolygon(xy, polygon) {
  const out = [];
  if (polygon.length < 3) return out;
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const [px, py] of polygon) {
    x0 = Math.min(x0, px);
    x1 = Math.max(x1, px);
    y0 = Math.min(y0, py);
    y1 = Math.max(y1, py);
  }
  for (let i = 0; i < xy.length / 2; i++) {
    const a = xy[2 * i];
    const b = xy[2 * i + 1];
    if (!(a >= x0 && a <= x1 && b >= y0 && b <= y1)) continue;
    let inside = false;
    for (let j = 0, k = polygon.length - 1; j < polygon.length; k = j++) {
      const [xj, yj] = polygon[j];
      const [xk, yk] = polygon[k];
      if (yj > b !== yk > b && a < ((xk - xj) * (b - yj)) / (yk - yj) + xj) inside = !inside;
    }
    if (inside) out.push(i);
  }
  return out;
}

/** The four corners of the box spanned by two corners. */
export function boxPolygon([ax, ay], [bx, by]) {
  return [
    [ax, ay],
    [bx, ay],
    [bx, by],
    [ax, by],
  ];
}

/** Overlay on `container`; `toData(clientX, clientY)` maps the mouse into data coordinates
 * ({x, y}) and `onShape(polygon)` receives the finished shape as [[x, y], ...] in data
 * coordinates. */
export function createSelector(container, toData, onShape) {
  const svg = h("svg", "sc-lasso", null, SVG);
  const shape = h("polygon", "sc-lasso-shape", null, SVG);
  svg.append(shape);
  container.append(svg);
  let mode = null;
  let screen = [];
  let data = [];

  const local = (event) => {
    const box = svg.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  };
  const at = (event) => {
    const d = toData(event.clientX, event.clientY);
    return [d.x, d.y];
  };
  const draw = () => shape.setAttribute("points", screen.map((p) => p.join(",")).join(" "));

  svg.addEventListener("pointerdown", (event) => {
    if (!mode) return;
    event.preventDefault();
    svg.setPointerCapture?.(event.pointerId);
    screen = [local(event)];
    data = [at(event)];
  });
  svg.addEventListener("pointermove", (event) => {
    if (!mode || !screen.length) return;
    const p = local(event);
    const d = at(event);
    if (mode === "box") {
      screen = boxPolygon(screen[0], p);
      data = boxPolygon(data[0], d);
    } else {
      screen.push(p);
      data.push(d);
    }
    draw();
  });
  svg.addEventListener("pointerup", () => {
    if (!mode || !screen.length) return;
    const polygon = data;
    screen = [];
    data = [];
    draw();
    onShape(polygon);
  });

  return {
    get mode() {
      return mode;
    },
    /** "lasso", "box" or null (the plot's own pan/zoom tools get the mouse). */
    setMode(next) {
      mode = next;
      svg.classList.toggle("sc-active", Boolean(mode));
    },
  };
}
