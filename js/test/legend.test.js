import assert from "node:assert/strict";
import { test } from "node:test";
import { Window } from "happy-dom";
import { decodeProbe } from "../src/data.js";
import { classCounts, classMask, createLegend } from "../src/legend.js";
import { probePayload } from "./fake_model.js";

const window = new Window();
globalThis.document = window.document;

test("class masks and counts", () => {
  const labels = new Uint16Array([0, 2, 2, 1]);
  assert.equal(classMask(labels, new Set()), null);
  assert.deepEqual([...classMask(labels, new Set([2]))], [0, 1, 1, 0]);
  assert.deepEqual(classCounts(labels, 3), [1, 1, 2]);
});

test("the legend names each class in its palette colour; click hides, shift-click highlights", () => {
  let changes = 0;
  const legend = createLegend(decodeProbe(probePayload([0, 1, 2, 2])), () => changes++);
  const items = legend.el.querySelectorAll(".sc-class");
  assert.deepEqual([...items].map((i) => i.textContent), ["zero (1)", "one (1)", "two (2)"]);
  assert.equal(items[1].querySelector(".sc-swatch").style.background, "rgb(0, 255, 0)");
  assert.equal(legend.visible(), null);
  items[2].click();
  assert.deepEqual([...legend.visible()], [1, 1, 0, 0]);
  assert.ok(items[2].classList.contains("sc-hidden"));
  items[2].click();
  assert.equal(legend.visible(), null);
  items[0].dispatchEvent(new window.MouseEvent("click", { shiftKey: true }));
  assert.deepEqual([...legend.highlighted()], [1, 0, 0, 0]);
  assert.ok(items[0].classList.contains("sc-highlighted"));
  assert.equal(changes, 3);
});
