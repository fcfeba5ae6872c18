import assert from "node:assert/strict";
import { test } from "node:test";
import { restoreBuffers, staticModel } from "../src/standalone.js";

const b64 = (bytes) => Buffer.from(bytes).toString("base64");

test("saved buffers go back to their paths as DataViews", () => {
  const state = restoreBuffers({ data: { xy: { dtype: "float32", shape: [1, 2] } } }, [
    { path: ["data", "xy", "buffer"], data: b64(new Uint8Array(new Float32Array([1, 2]).buffer)) },
  ]);
  const view = state.data.xy.buffer;
  assert.ok(view instanceof DataView);
  assert.deepEqual([...new Float32Array(view.buffer)], [1, 2]);
});

test("the static host resolves child references of the saved root", async () => {
  const saved = {
    root: "r",
    models: {
      r: { state: { frames: ["anywidget:c1"] }, buffers: [] },
      c1: { state: { data: { index: 4 } }, buffers: [] },
    },
  };
  const { model, host } = staticModel(saved);
  assert.deepEqual(model.get("frames"), ["anywidget:c1"]);
  const child = await host.getModel(model.get("frames")[0]);
  assert.equal(child.get("data").index, 4);
  await assert.rejects(host.getModel("anywidget:nope"), /no model nope/);
});
