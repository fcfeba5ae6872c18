import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeProbe } from "../src/data.js";
import { FrameStore, Lru } from "../src/frames.js";
import { checkpointPayload, createHost, framePayload, probePayload } from "./fake_model.js";

test("the Lru keeps the most recently used entries and makes the rest again", () => {
  const lru = new Lru(2);
  let made = 0;
  const get = (k) => lru.get(k, () => ++made);
  get("a");
  get("b");
  get("a");
  get("c"); // evicts b (a was used more recently)
  assert.equal(lru.size, 2);
  assert.equal(get("a"), 1);
  assert.equal(get("b"), 4);
});

async function store(frames, window) {
  const host = createHost();
  const probe = decodeProbe(probePayload([0, 1, 2]));
  const s = new FrameStore(host, probe, window);
  const refs = [];
  const cks = [];
  for (let i = frames - 1; i >= 0; i--) {
    cks.push(host.add(checkpointPayload(i, [0, 1, 2])));
    refs.push(host.add(framePayload("m", i, [i, 10 * i, i + 1, 0, i + 2, 0], { alerts: i === 1 ? [{ signal: "V" }] : [] })));
  }
  await s.sync(cks, refs);
  return s;
}

test("every frame's metadata is kept but only a window of frames is decoded", async () => {
  const s = await store(10, 3);
  assert.deepEqual(s.checkpoints.map((c) => c.index), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(s.framesOf("m").size, 10);
  assert.deepEqual(s.framesOf("m").get(1).alerts, [{ signal: "V" }]);
  assert.equal(s.decoded.size, 0);
  for (let i = 0; i < 10; i++) assert.deepEqual([...s.frame("m", i).xy], [i, 10 * i, i + 1, 0, i + 2, 0]);
  assert.equal(s.decoded.size, 3);
  // an evicted frame is decoded again, equal to the first time
  assert.deepEqual([...s.frame("m", 0).xy], [0, 0, 1, 0, 2, 0]);
  assert.equal(s.frame("m", 0).background.rgba.rows, 2);
  assert.equal(s.frame("other", 0), null);
});

test("trajectories read every frame without decoding it", async () => {
  const s = await store(4, 2);
  const paths = s.trajectories("m", [0, 2]);
  assert.deepEqual(paths.indices, [0, 1, 2, 3]);
  assert.deepEqual([...paths.xs[0]], [0, 1, 2, 3]);
  assert.deepEqual([...paths.ys[0]], [0, 10, 20, 30]);
  assert.deepEqual([...paths.xs[1]], [2, 3, 4, 5]);
  assert.equal(s.decoded.size, 0);
});

test("syncing the same references again adds nothing", async () => {
  const s = await store(3, 2);
  const fresh = await s.sync([...s.resolved.keys()].slice(0, 3), [...s.resolved.keys()].slice(3));
  assert.deepEqual(fresh, []);
  assert.equal(s.checkpoints.length, 3);
});
