import assert from "node:assert/strict";
import { test } from "node:test";
import { Window } from "happy-dom";
import { createView } from "../src/view.js";
import {
  arr,
  checkpointPayload,
  createFakePlot,
  createHost,
  createModel,
  framePayload,
  probePayload,
} from "./fake_model.js";

const window = new Window();
globalThis.document = window.document;
globalThis.requestAnimationFrame = (cb) => setTimeout(cb, 0);

const LABELS = [0, 1, 2];
const XY = (k) => [k, k, k + 1, k + 2, k + 3, k + 4];

async function setup({ frames = 3, methods = ["sentrycam", "umap"], status = {}, alertAt = 1 } = {}) {
  const host = createHost();
  const checkpoints = [];
  const frameRefs = [];
  for (let i = 0; i < frames; i++) {
    checkpoints.push(host.add(checkpointPayload(i, i === 0 ? [0, 2, 2] : LABELS)));
    const alerts = i === alertAt ? [{ signal: "D", explanation: "classes collapsing" }] : [];
    frameRefs.push(host.add(framePayload("sentrycam", i, XY(i), { alerts })));
  }
  frameRefs.push(host.add(framePayload("umap", 0, XY(100), { background: false })));
  const thumbs = arr(new Uint8Array(3 * 2 * 2).fill(200), [3, 2, 2]);
  const model = createModel({
    probe: probePayload(LABELS, thumbs),
    methods,
    inverse: { sentrycam: true, umap: false },
    checkpoints,
    frames: frameRefs,
    status,
  });
  const el = document.createElement("div");
  document.body.append(el);
  const plot = createFakePlot();
  const view = await createView({ model, el, host, makePlot: async () => plot });
  return { view, plot, el, model, host };
}

test("follows the newest checkpoint and draws its frame over the background", async () => {
  const { view, plot, el } = await setup();
  assert.equal(view.position, 2);
  assert.equal(el.querySelector(".sc-epoch").textContent, "epoch 20 · 3/3");
  assert.deepEqual([...plot.last("setPoints").xy], XY(2));
  assert.equal(plot.last("setBackground").rows, 2);
  assert.equal(el.querySelector(".sc-badge").textContent, "T(15) 0.912 · PPR 0.950");
  view.destroy();
});

test("the slider scrubs client-side and rings appear where predictions are wrong", async () => {
  const { view, plot, el } = await setup();
  const slider = el.querySelector(".sc-slider");
  assert.equal(slider.max, "2");
  slider.value = "0";
  slider.dispatchEvent(new window.Event("input"));
  assert.equal(view.position, 0);
  const points = plot.last("setPoints");
  assert.deepEqual([...points.xy], XY(0));
  assert.deepEqual([...points.pred].map((p, i) => p !== points.labels[i]), [false, true, false]);
  view.destroy();
});

test("toggling to a method without the frame shows it as pending; no inverse means no background", async () => {
  const { view, plot, el } = await setup();
  const umap = el.querySelector('.sc-method[data-method="umap"]');
  assert.ok(umap.classList.contains("sc-pending"));
  umap.click();
  assert.equal(view.method, "umap");
  assert.match(el.querySelector(".sc-overlay").textContent, /UMAP: pending for epoch 20/);
  assert.equal(plot.calls.filter((c) => c.name === "clearPoints").length, 1);
  assert.equal(el.querySelector(".sc-note").textContent, "no background: UMAP has no inverse mapping");
  view.setPosition(0);
  assert.equal(el.querySelector(".sc-overlay").style.display, "none");
  assert.equal(plot.last("setBackground"), null);
  assert.deepEqual([...plot.last("setPoints").xy], XY(100));
  view.destroy();
});

test("alert markers sit on the track with their explanation and jump there on click", async () => {
  const { view, el } = await setup({ alertAt: 1 });
  const marks = el.querySelectorAll(".sc-alert");
  assert.equal(marks.length, 1);
  assert.equal(marks[0].style.left, "50%");
  assert.equal(marks[0].title, "D: classes collapsing");
  marks[0].click();
  assert.equal(view.position, 1);
  view.destroy();
});

test("hover shows sample, label, prediction and thumbnail; click draws the trajectory", async () => {
  const { view, plot, el } = await setup();
  assert.equal(view.hoverAt(3.2, 4.1), 1);
  const tip = el.querySelector(".sc-tooltip");
  assert.equal(tip.style.display, "block");
  assert.match(tip.textContent, /sample 1/);
  assert.match(tip.textContent, /label one/);
  assert.match(tip.textContent, /prediction one \(100%\)/);
  assert.equal(tip.querySelectorAll("canvas.sc-thumb").length, 1);
  assert.deepEqual(plot.last("setHighlight"), { x: 3, y: 4 });
  assert.equal(view.hoverAt(50, 50), -1);
  assert.equal(tip.style.display, "none");
  view.select(1);
  const path = plot.last("setTrajectories");
  assert.deepEqual([...path.xs[0]], [1, 2, 3]);
  assert.deepEqual([...path.ys[0]], [2, 3, 4]);
  view.destroy();
});

test("new frames arriving while following move the view; a scrubbed view stays put", async () => {
  const { view, model, host, el } = await setup();
  view.setPosition(0);
  model.set("checkpoints", [...model.get("checkpoints"), host.add(checkpointPayload(3, LABELS))]);
  await view.refresh();
  assert.equal(view.position, 0);
  assert.equal(el.querySelector(".sc-slider").max, "3");
  view.setPosition(3);
  assert.match(el.querySelector(".sc-overlay").textContent, /pending/);
  model.set("frames", [...model.get("frames"), host.add(framePayload("sentrycam", 3, XY(3)))]);
  model.set("checkpoints", [...model.get("checkpoints"), host.add(checkpointPayload(4, LABELS))]);
  await view.refresh();
  assert.equal(view.position, 4);
  view.destroy();
});

test("the status line reports the worker, and errors are shown", async () => {
  const { view, model, el } = await setup({ status: { latest_epoch: 20, queued: 1 } });
  assert.equal(el.querySelector(".sc-status").textContent, "3 checkpoints · latest epoch 20 · queue 1");
  assert.equal(el.querySelector(".sc-error").style.display, "none");
  model.set("status", { error: "InputError: k = 15 must be smaller" });
  assert.equal(el.querySelector(".sc-error").textContent, "worker error: InputError: k = 15 must be smaller");
  assert.notEqual(el.querySelector(".sc-error").style.display, "none");
  view.destroy();
});

test("play steps through the checkpoints and pauses", async () => {
  const { view, el } = await setup();
  view.setPosition(0);
  el.querySelector(".sc-play").click();
  await new Promise((r) => setTimeout(r, 400));
  el.querySelector(".sc-play").click();
  assert.equal(view.position, 1);
  assert.equal(el.querySelector(".sc-play").textContent, "▶");
  view.destroy();
});

test("legend clicks hide a class from the plot and from hovering", async () => {
  const { view, plot, el } = await setup();
  el.querySelector('.sc-class[data-class="1"]').click();
  assert.deepEqual([...plot.last("setPoints").visible], [1, 0, 1]);
  assert.equal(view.hoverAt(3.2, 4.1), 0); // point 1 is nearer but hidden
  el.querySelector('.sc-class[data-class="1"]').click();
  assert.equal(plot.last("setPoints").visible, null);
  view.destroy();
});

test("a selection goes to Python, fades the rest, draws trajectories, and comes back from Python", async () => {
  const { view, plot, el, model } = await setup();
  view.setSelection([2, 0, 2]);
  assert.deepEqual(model.get("selection"), [0, 2]);
  assert.equal(model.saved, 1);
  assert.deepEqual([...plot.last("setPoints").faded], [0, 1, 0]);
  assert.equal(plot.last("setTrajectories").xs.length, 2);
  assert.match(el.querySelector(".sc-selection").textContent, /^2 selected/);
  model.set("selection", [1]);
  assert.deepEqual(view.selection, [1]);
  assert.equal(model.saved, 1);
  el.querySelector(".sc-clear").click();
  assert.deepEqual(model.get("selection"), []);
  assert.equal(plot.last("setPoints").faded, null);
  assert.equal(plot.last("setTrajectories"), null);
  view.destroy();
});

test("the view fits each frame until the user zooms; 'fit' brings fitting back", async () => {
  const { view, plot, el } = await setup();
  const fits = () => plot.calls.filter((c) => c.name === "setRanges").length;
  const before = fits();
  plot.userRange();
  assert.ok(!el.querySelector(".sc-fit").classList.contains("sc-active"));
  view.setPosition(0);
  assert.equal(fits(), before);
  el.querySelector(".sc-fit").click();
  assert.equal(fits(), before + 1);
  assert.deepEqual(plot.last("setRanges").map((v) => +v.toFixed(2)), [-0.18, 3.18, -0.24, 4.24]);
  view.destroy();
});

test("points without coordinates are counted in the note; clicking the timeline scrubs", async () => {
  const { view, model, host, el } = await setup();
  model.set("checkpoints", [...model.get("checkpoints"), host.add(checkpointPayload(3, LABELS))]);
  model.set("frames", [...model.get("frames"), host.add(framePayload("sentrycam", 3, [NaN, 1, 2, 2, 3, Infinity]))]);
  await view.refresh();
  assert.equal(view.position, 3);
  assert.match(el.querySelector(".sc-note").textContent, /2 points have no coordinates \(NaN\/inf\)/);
  assert.deepEqual(view.frameAt().bounds, [2, 2, 2, 2]);
  const chart = el.querySelector(".sc-chart-box");
  chart.getBoundingClientRect = () => ({ left: 0, width: 300, top: 0, height: 56 });
  chart.dispatchEvent(new window.MouseEvent("click", { clientX: 95, clientY: 10 }));
  assert.equal(view.position, 1);
  view.destroy();
});

test("in idle time the view prepares the neighbouring frames, the scrub direction first", async () => {
  const { view, plot, el } = await setup({ frames: 5 });
  const prerendered = () => plot.calls.filter((c) => c.name === "prerender").map((c) => c.key);
  const idle = async (count) => {
    for (let waited = 0; prerendered().length < count && waited < 5000; waited += 10) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  view.setPosition(1); // moving back from the newest checkpoint
  await idle(2);
  assert.deepEqual(prerendered(), ["sentrycam|0|0", "sentrycam|2|0"]);
  const ahead = plot.calls.find((c) => c.name === "prerender");
  assert.deepEqual([...ahead.arg.xy], XY(0)); // checkpoint 0's points, fitted ranges
  assert.equal(ahead.ranges.length, 4);
  plot.calls.length = 0;
  view.setPosition(2); // forwards now, then a click on the legend changes the look
  el.querySelector(".sc-class").click();
  await idle(2);
  assert.deepEqual(prerendered(), ["sentrycam|3|1", "sentrycam|1|1"]);
  assert.equal(plot.calls.findLast((c) => c.name === "setPoints").key, "sentrycam|2|1");
  view.destroy();
});

test("a switch leaves text that reads the same untouched", async () => {
  const { view, el } = await setup();
  const badge = el.querySelector(".sc-badge").firstChild; // every frame has the same metrics
  const epoch = el.querySelector(".sc-epoch").firstChild;
  view.setPosition(1);
  assert.equal(el.querySelector(".sc-badge").firstChild, badge);
  assert.notEqual(el.querySelector(".sc-epoch").firstChild, epoch);
  assert.equal(el.querySelector(".sc-epoch").textContent, "epoch 10 · 2/3");
  view.destroy();
});
