// A read-only stand-in for the widget models, built from a saved state (the JSON the HTML
// exporter embeds: every model's state with its binary buffers as base64). It gives the view
// the same `get/on/off` surface and `host.getModel` lookup that anywidget provides.

function decodeBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return new DataView(bytes.buffer);
}

/** Put each base64 buffer back at its path inside `state` (the widget protocol's layout). */
export function restoreBuffers(state, buffers) {
  for (const { path, data } of buffers ?? []) {
    let target = state;
    for (const key of path.slice(0, -1)) target = target[key];
    target[path[path.length - 1]] = decodeBase64(data);
  }
  return state;
}

function modelOf(state) {
  return {
    get: (key) => state[key],
    set: (key, value) => {
      state[key] = value;
    },
    on: () => {},
    off: () => {},
    save_changes: () => {},
    send: () => {},
  };
}

/** `{root, models: {id: {state, buffers}}}` -> the root model and a host resolving children. */
export function staticModel(saved) {
  const models = new Map();
  for (const [id, entry] of Object.entries(saved.models)) {
    models.set(id, modelOf(restoreBuffers(entry.state, entry.buffers)));
    entry.buffers = null; // the base64 text is decoded: let it go
  }
  const host = {
    async getModel(ref) {
      const id = String(ref).replace(/^anywidget:/, "");
      const found = models.get(id);
      if (!found) throw new Error(`saved state has no model ${id}`);
      return found;
    },
  };
  return { model: models.get(saved.root), host };
}
