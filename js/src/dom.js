// The one DOM helper every part of the view uses.

/** `<tag class=className>text</tag>`; `ns` builds SVG elements. */
export function h(tag, className, text, ns = null) {
  const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  if (className) el.setAttribute("class", className);
  if (text != null) el.textContent = text;
  return el;
}

export const SVG = "http://www.w3.org/2000/svg";
