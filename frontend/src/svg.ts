// Inline SVG for the plots: an element builder like dom.ts's h(), and the frame and axes that every
// plot of plots.ts geometry draws the same way.

import type { Area, Tick } from "./plots";

const SVG_NS = "http://www.w3.org/2000/svg";

export type SvgChild = SVGElement | string | null | undefined | false | readonly SvgChild[];

export function svg(tag: string, attrs: Record<string, string | number | undefined>, ...children: SvgChild[]): SVGElement {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined) element.setAttribute(name, String(value));
  appendSvg(element, children);
  return element;
}

function appendSvg(parent: SVGElement, children: readonly SvgChild[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendSvg(parent, child);
    else parent.appendChild(typeof child === "string" ? document.createTextNode(child) : (child as SVGElement));
  }
}

/** The data area's background, tick marks with their labels below and left, and the axis titles
 * (the y title turned up along the left edge); `height` is the whole plot's. */
export function axes(area: Area, xTicks: readonly Tick[], yTicks: readonly Tick[], xLabel: string, yLabel: string, height: number): SVGElement[] {
  return [
    svg("rect", { class: "plot-area", x: area.left, y: area.top, width: area.right - area.left, height: area.bottom - area.top }),
    ...xTicks.map((tick) =>
      svg("g", { class: "tick" }, svg("line", { x1: tick.position, x2: tick.position, y1: area.bottom, y2: area.bottom + 4 }), svg("text", { x: tick.position, y: area.bottom + 16, "text-anchor": "middle" }, tick.label)),
    ),
    ...yTicks.map((tick) =>
      svg("g", { class: "tick" }, svg("line", { x1: area.left - 4, x2: area.left, y1: tick.position, y2: tick.position }), svg("text", { x: area.left - 7, y: tick.position + 4, "text-anchor": "end" }, tick.label)),
    ),
    svg("text", { class: "axis-label", x: (area.left + area.right) / 2, y: height - 6, "text-anchor": "middle" }, xLabel),
    yLabel ? svg("text", { class: "axis-label", x: 0, y: 0, "text-anchor": "middle", transform: `translate(12 ${(area.top + area.bottom) / 2}) rotate(-90)` }, yLabel) : null,
  ].filter((element): element is SVGElement => element !== null);
}
