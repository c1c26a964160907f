import { describe, expect, it } from "vitest";
import {
  clampAdjust,
  clampPan,
  cssFilter,
  FIT,
  fitScale,
  MAX_ZOOM,
  MIN_ZOOM,
  origin,
  panBy,
  toImage,
  wheelFactor,
  zoomAt,
} from "./viewport";

const stage = { width: 1000, height: 800 };
const image = { width: 576, height: 592 };

describe("fit", () => {
  it("scales the frame to fit the stage and centres it", () => {
    expect(fitScale(stage, image)).toBeCloseTo(800 / 592);
    const o = origin(FIT, stage, image);
    const s = fitScale(stage, image);
    expect(o.x + (image.width * s) / 2).toBeCloseTo(500);
    expect(o.y).toBeCloseTo(0);
  });
});

describe("zoomAt", () => {
  it("keeps the frame pixel under the pointer where it was", () => {
    const before = toImage(FIT, stage, image, 620, 300);
    const zoomed = zoomAt(FIT, stage, image, 2, 620, 300);
    expect(zoomed.zoom).toBe(2);
    const after = toImage(zoomed, stage, image, 620, 300);
    expect(after.x).toBeCloseTo(before.x);
    expect(after.y).toBeCloseTo(before.y);
  });

  it("zooming in then out at the same point returns to the start", () => {
    const there = zoomAt(FIT, stage, image, 1.25, 300, 200);
    const back = zoomAt(there, stage, image, 1 / 1.25, 300, 200);
    expect(back.zoom).toBeCloseTo(1);
    expect(back.panX).toBeCloseTo(0);
    expect(back.panY).toBeCloseTo(0);
  });

  it("stays within the zoom limits", () => {
    expect(zoomAt(FIT, stage, image, 1000, 500, 400).zoom).toBe(MAX_ZOOM);
    expect(zoomAt(FIT, stage, image, 0.0001, 500, 400).zoom).toBe(MIN_ZOOM);
    const atMax = { zoom: MAX_ZOOM, panX: 3, panY: 4 };
    expect(zoomAt(atMax, stage, image, 2, 10, 10)).toBe(atMax);
  });
});

describe("pan", () => {
  it("moves by the dragged distance", () => {
    const zoomed = { zoom: 4, panX: 0, panY: 0 };
    expect(panBy(zoomed, stage, image, 30, -20)).toEqual({ zoom: 4, panX: 30, panY: -20 });
  });

  it("never lets the frame leave the stage entirely", () => {
    const far = panBy(FIT, stage, image, 1e6, -1e6);
    const s = fitScale(stage, image);
    const o = origin(far, stage, image);
    // At least a quarter of the stage's smaller side of the frame stays visible.
    expect(stage.width - o.x).toBeGreaterThanOrEqual(200 - 1e-9);
    expect(o.y + image.height * s).toBeGreaterThanOrEqual(200 - 1e-9);
    expect(clampPan(far, stage, image)).toEqual(far);
  });
});

describe("wheel and adjustments", () => {
  it("zooms in when the wheel turns away from the user, out when towards", () => {
    expect(wheelFactor(-100, 0)).toBeGreaterThan(1);
    expect(wheelFactor(100, 0)).toBeLessThan(1);
    expect(wheelFactor(-3, 1)).toBeCloseTo(wheelFactor(-48, 0));
  });

  it("clamps brightness and contrast and renders them as a CSS filter", () => {
    expect(clampAdjust(10)).toBe(3);
    expect(clampAdjust(-1)).toBe(0.2);
    expect(clampAdjust(1.1 + 0.1)).toBe(1.2);
    expect(cssFilter({ brightness: 1.2, contrast: 0.8 })).toBe("brightness(1.2) contrast(0.8)");
  });
});
