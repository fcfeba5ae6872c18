// Entry point: the anywidget front-end module (default export) and the standalone renderer used
// by exported HTML files (named export). Both draw through the same view.

import { createBokehPlot, ensureBokeh } from "./plot.js";
import { staticModel } from "./standalone.js";
import { createView } from "./view.js";

async function mount({ model, el, host }) {
  // BokehJS travels once per kernel in a shared child model; fetched only if not on the page yet
  const source = async () => {
    const ref = model.get("_bokeh");
    return ref ? (await host.getModel(ref)).get("source") : "";
  };
  const Bokeh = await ensureBokeh(source, model.get("_bokeh_version"));
  const view = await createView({
    model,
    el,
    host,
    frameWindow: model.get("frame_window"),
    makePlot: (container) => createBokehPlot(container, JSON.parse(model.get("_plot")), Bokeh),
  });
  el.sentrycam = view;
  return view;
}

function showFailure(el, error) {
  const box = document.createElement("pre");
  box.className = "sc-error sc-fatal";
  box.textContent = `sentrycam widget failed to render: ${error?.stack ?? error}`;
  el.append(box);
}

export default {
  async render({ model, el, host }) {
    try {
      const view = await mount({ model, el, host });
      return () => view.destroy();
    } catch (error) {
      showFailure(el, error);
      return undefined;
    }
  },
};

/** Render a saved widget state (see sentrycam_widget/html_export.py) into `el`, no kernel. */
export async function renderStandalone(el, saved) {
  const { model, host } = staticModel(saved);
  try {
    return await mount({ model, el, host });
  } catch (error) {
    showFailure(el, error);
    throw error;
  }
}
