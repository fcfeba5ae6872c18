import assert from "node:assert/strict";
import { test } from "node:test";
import { Window } from "happy-dom";
import { createTimeline, linePath, scalarLabel, scalarNames, timelineSeries, valueRange } from "../src/timeline.js";

const window = new Window();
globalThis.document = window.document;

const checkpoints = [
  { index: 0, epoch: 0, scalars: { val_loss: 2, acc: 0.1 } },
  { index: 1, epoch: 5, scalars: { val_loss: null, acc: 0.5 } },
  { index: 2, epoch: 10, scalars: { val_loss: 1 } },
];
const frames = new Map([
  [0, { metrics: { trustworthiness: 0.9, ppr: 0.8 }, alerts: [] }],
  [2, { metrics: { trustworthiness: null, ppr: 0.7 }, alerts: [{ signal: "D", explanation: "collapse" }] }],
]);

test("names: validation loss first and spelled out", () => {
  assert.deepEqual(scalarNames(checkpoints), ["val_loss", "acc"]);
  assert.equal(scalarLabel("val_loss"), "validation loss");
  assert.equal(scalarLabel("lr"), "lr");
});

test("series hold NaN where a value is missing and flag the missing recorded scalars", () => {
  const s = timelineSeries(checkpoints, frames, "val_loss");
  assert.deepEqual([...s.scalar], [2, NaN, 1]);
  assert.deepEqual([...s.trust], [0.9, NaN, NaN]);
  assert.deepEqual(s.missing, [1]);
  assert.deepEqual(s.alerts, [{ position: 2, texts: ["D: collapse"] }]);
  // a scalar not recorded at a checkpoint is a gap, not a missing value
  assert.deepEqual(timelineSeries(checkpoints, frames, "acc").missing, []);
});

test("a missing value breaks the line; ranges ignore it", () => {
  assert.deepEqual(valueRange([2, NaN, 1]), [1, 2]);
  assert.deepEqual(valueRange([3, 3]), [2.5, 3.5]);
  assert.equal(valueRange([NaN]), null);
  assert.equal(linePath([2, NaN, 1, 1], [1, 2]), "M0.00 4.00 M66.67 52.00 L100.00 52.00");
  assert.equal(linePath([NaN], null), "");
});

test("the timeline reads 'validation loss', marks alerts and missing values, and picks positions", () => {
  const picked = [];
  const t = createTimeline((p) => picked.push(p));
  t.setScalars(scalarNames(checkpoints));
  t.update(timelineSeries(checkpoints, frames, t.scalar), 1, (k) => checkpoints[k].index);
  assert.equal(t.scalar, "val_loss");
  assert.equal(t.el.querySelector(".sc-readout").textContent, "validation loss missing · T(15) missing · PPR missing");
  const alert = t.el.querySelector(".sc-alert");
  assert.equal(alert.title, "D: collapse");
  assert.equal(alert.style.left, "100%");
  assert.equal(alert.dataset.index, "2");
  assert.match(t.el.querySelector(".sc-missing").title, /validation loss is missing/);
  alert.click();
  assert.deepEqual(picked, [2]);
  assert.match(t.el.querySelector(".sc-line-scalar").getAttribute("d"), /^M0\.00 4\.00 M100\.00 52\.00$/);
  const options = [...t.el.querySelectorAll("option")].map((o) => o.textContent);
  assert.deepEqual(options, ["validation loss", "acc"]);
});
