import assert from "node:assert/strict";
import { test } from "node:test";
import { boxPolygon, pointsInPolygon } from "../src/selection.js";
import { interleave } from "./fake_model.js";

test("points inside a polygon (even-odd), NaN never inside", () => {
  const xy = interleave(new Float32Array([1, 5, 9, 5, NaN]), new Float32Array([1, 5, 1, 9, 5]));
  const triangle = [
    [0, 0],
    [10, 0],
    [5, 6],
  ];
  assert.deepEqual(pointsInPolygon(xy, triangle), [0, 1, 2]);
  assert.deepEqual(pointsInPolygon(xy, boxPolygon([4, 4], [6, 10])), [1, 3]);
  assert.deepEqual(pointsInPolygon(xy, [[0, 0], [1, 1]]), []);
});
