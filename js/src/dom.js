// The DOM helpers every part of the view uses.

/** `<tag class=className>text</tag>`; `ns` builds SVG elements. */
export function h(tag, className, text, ns = null) {
  const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  if (className) el.setAttribute("class", className);
  if (text != null) el.textContent = text;
  return el;
}

export const SVG = "http://www.w3.org/2000/svg";

/** Set `el`'s text, leaving the element alone when it already reads `text`: writing the same
 * text still replaces the text node, and the browser then works out the page's style again
 * before the next paint (a frame switch repaints the plot at once). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
