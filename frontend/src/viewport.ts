// Zoom and pan of the frame inside its stage, as pure maths.
//
// zoom 1 is "fit": the whole frame visible and centred. pan is the offset, in screen pixels, of the
// frame's centre from the stage's centre. The frame is drawn with its top-left corner at
// `origin()` and scaled by `scale()`; the DOM applies exactly that as a CSS transform.

export interface Size {
  width: number;
  height: number;
}

export interface View {
  zoom: number;
  panX: number;
  panY: number;
}

export const MIN_ZOOM = 0.25;
export const MAX_ZOOM = 32;
export const ZOOM_STEP = 1.25;

export const FIT: View = { zoom: 1, panX: 0, panY: 0 };

export function fitScale(stage: Size, image: Size): number {
  if (image.width <= 0 || image.height <= 0 || stage.width <= 0 || stage.height <= 0) return 1;
  return Math.min(stage.width / image.width, stage.height / image.height);
}

export function scale(view: View, stage: Size, image: Size): number {
  return fitScale(stage, image) * view.zoom;
}

/** Screen position (stage pixels) of the frame's top-left corner. */
export function origin(view: View, stage: Size, image: Size): { x: number; y: number } {
  const s = scale(view, stage, image);
  return {
    x: stage.width / 2 + view.panX - (image.width * s) / 2,
    y: stage.height / 2 + view.panY - (image.height * s) / 2,
  };
}

/** Frame pixel under a stage point. */
export function toImage(view: View, stage: Size, image: Size, x: number, y: number): { x: number; y: number } {
  const s = scale(view, stage, image);
  const o = origin(view, stage, image);
  return { x: (x - o.x) / s, y: (y - o.y) / s };
}

export function clampZoom(zoom: number): number {
  return Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom));
}

/**
 * Keep at least a quarter of the stage's smaller side of the frame on screen, so that panning can
 * never lose the frame entirely.
 */
export function clampPan(view: View, stage: Size, image: Size): View {
  const s = scale(view, stage, image);
  const keep = Math.min(stage.width, stage.height) / 4;
  const limitX = Math.max(0, (stage.width + image.width * s) / 2 - keep);
  const limitY = Math.max(0, (stage.height + image.height * s) / 2 - keep);
  return {
    zoom: view.zoom,
    panX: Math.min(limitX, Math.max(-limitX, view.panX)),
    panY: Math.min(limitY, Math.max(-limitY, view.panY)),
  };
}

/**
 * Zoom by `factor` keeping the frame pixel under the stage point (x, y) where it is (the mouse
 * position for the wheel, the stage centre for the keys).
 */
export function zoomAt(view: View, stage: Size, image: Size, factor: number, x: number, y: number): View {
  const zoom = clampZoom(view.zoom * factor);
  if (zoom === view.zoom) return view;
  const point = toImage(view, stage, image, x, y);
  const s = fitScale(stage, image) * zoom;
  // The new top-left corner puts `point` back under (x, y); pan follows from the origin formula.
  const left = x - point.x * s;
  const top = y - point.y * s;
  const next = {
    zoom,
    panX: left - stage.width / 2 + (image.width * s) / 2,
    panY: top - stage.height / 2 + (image.height * s) / 2,
  };
  return clampPan(next, stage, image);
}

export function panBy(view: View, stage: Size, image: Size, dx: number, dy: number): View {
  return clampPan({ zoom: view.zoom, panX: view.panX + dx, panY: view.panY + dy }, stage, image);
}

/** Wheel delta (pixels, negative = away from the user) to a zoom factor: smooth for trackpads. */
export function wheelFactor(deltaY: number, deltaMode: number): number {
  const pixels = deltaMode === 1 ? deltaY * 16 : deltaMode === 2 ? deltaY * 400 : deltaY;
  return Math.exp(-Math.max(-400, Math.min(400, pixels)) * 0.002);
}

export interface Adjust {
  brightness: number;
  contrast: number;
}

export const NEUTRAL: Adjust = { brightness: 1, contrast: 1 };
export const ADJUST_MIN = 0.2;
export const ADJUST_MAX = 3;

export function clampAdjust(value: number): number {
  return Math.round(Math.min(ADJUST_MAX, Math.max(ADJUST_MIN, value)) * 100) / 100;
}

/** The CSS transform and filter that draw a frame with this view and adjustment. */
export function cssTransform(view: View, stage: Size, image: Size): string {
  const o = origin(view, stage, image);
  const s = scale(view, stage, image);
  return `translate(${o.x.toFixed(2)}px, ${o.y.toFixed(2)}px) scale(${s.toFixed(5)})`;
}

export function cssFilter(adjust: Adjust): string {
  return `brightness(${adjust.brightness}) contrast(${adjust.contrast})`;
}
