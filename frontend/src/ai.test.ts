import { describe, expect, it } from "vitest";
import {
  buildColormap,
  clampOpacity,
  COLORMAP,
  colorizeCam,
  compositeOver,
  ExposureTracker,
  gateRefusal,
  missingTasks,
  percent,
  ranked,
  type Prediction,
} from "./ai";

function gray(values: number[]): Uint8ClampedArray {
  const data = new Uint8ClampedArray(values.length * 4);
  values.forEach((value, i) => {
    data.set([value, value, value, 255], i * 4);
  });
  return data;
}

function luminance(r: number, g: number, b: number): number {
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

describe("colormap", () => {
  it("has 256 colours from viridis' dark violet to its yellow, getting lighter all the way", () => {
    expect(COLORMAP).toHaveLength(768);
    expect([...COLORMAP.slice(0, 3)]).toEqual([68, 1, 84]);
    expect([...COLORMAP.slice(765)]).toEqual([253, 231, 37]);
    for (let v = 1; v < 256; v++) {
      const before = luminance(COLORMAP[(v - 1) * 3]!, COLORMAP[(v - 1) * 3 + 1]!, COLORMAP[(v - 1) * 3 + 2]!);
      const now = luminance(COLORMAP[v * 3]!, COLORMAP[v * 3 + 1]!, COLORMAP[v * 3 + 2]!);
      expect(now).toBeGreaterThanOrEqual(before - 0.5);
    }
  });

  it("interpolates linearly between its anchors", () => {
    const lut = buildColormap([
      [0, 0, 0],
      [255, 100, 50],
    ]);
    expect([...lut.slice(0, 3)]).toEqual([0, 0, 0]);
    expect([...lut.slice(51 * 3, 51 * 3 + 3)]).toEqual([51, 20, 10]);
    expect([...lut.slice(765)]).toEqual([255, 100, 50]);
  });
});

describe("colorizeCam", () => {
  it("colours each value and makes it as opaque as the value times the opacity", () => {
    const cam = gray([0, 128, 255]);
    const out = new Uint8ClampedArray(cam.length);
    colorizeCam(cam, 0.5, out);
    expect(out[3]).toBe(0); // where the model did not look, the frame shows untouched
    expect(out[7]).toBe(64);
    expect(out[11]).toBe(128);
    expect([...out.slice(8, 11)]).toEqual([...COLORMAP.slice(765)]);
    expect([...out.slice(4, 7)]).toEqual([...COLORMAP.slice(128 * 3, 128 * 3 + 3)]);
  });

  it("draws nothing at opacity 0 and covers the hottest pixel fully at 100 %", () => {
    const cam = gray([255, 40]);
    const out = new Uint8ClampedArray(cam.length);
    colorizeCam(cam, 0, out);
    expect([out[3], out[7]]).toEqual([0, 0]);
    colorizeCam(cam, 1, out);
    expect([out[3], out[7]]).toEqual([255, 40]);
  });

  it("changes what the screen shows as the opacity changes", () => {
    const frame: [number, number, number] = [100, 100, 100];
    const cam = gray([200]);
    const out = new Uint8ClampedArray(4);
    const shown = (opacity: number) => {
      colorizeCam(cam, opacity, out);
      return compositeOver(frame, [out[0]!, out[1]!, out[2]!, out[3]!]);
    };
    expect(shown(0)).toEqual(frame);
    const half = shown(0.5);
    const full = shown(1);
    expect(half).not.toEqual(frame);
    const colour = [...COLORMAP.slice(600, 603)];
    // Nearer to the colormap's colour at full opacity than at half.
    const distance = (pixel: number[]) => pixel.reduce((sum, c, i) => sum + Math.abs(c - colour[i]!), 0);
    expect(distance(full)).toBeLessThan(distance(half));
    expect(distance(half)).toBeLessThan(distance(frame));
  });

  it("refuses an output of another size", () => {
    expect(() => colorizeCam(gray([1, 2]), 1, new Uint8ClampedArray(4))).toThrow();
  });

  it("keeps the opacity between 0 and 1 in steps of a percent", () => {
    expect(clampOpacity(-1)).toBe(0);
    expect(clampOpacity(1.7)).toBe(1);
    expect(clampOpacity(0.333)).toBe(0.33);
    expect(clampOpacity(Number.NaN)).toBe(0.5);
  });
});

describe("ExposureTracker", () => {
  function clock() {
    let now = 1000;
    return { now: () => now, advance: (ms: number) => (now += ms) };
  }

  it("knows nothing of a frame no model output was shown with", () => {
    const tracker = new ExposureTracker(clock().now);
    expect(tracker.of(1)).toEqual({ aiShown: false, camVisibleMs: 0 });
  });

  it("records the prediction as shown without any CAM time", () => {
    const tracker = new ExposureTracker(clock().now);
    tracker.predictionShown(1);
    expect(tracker.of(1)).toEqual({ aiShown: true, camVisibleMs: 0 });
    expect(tracker.of(2)).toEqual({ aiShown: false, camVisibleMs: 0 });
  });

  it("counts the time the CAM is on screen, including the running stretch", () => {
    const time = clock();
    const tracker = new ExposureTracker(time.now);
    tracker.camOnScreen(1);
    time.advance(400);
    expect(tracker.of(1)).toEqual({ aiShown: true, camVisibleMs: 400 });
    expect(tracker.timing(1)).toBe(true);
    time.advance(100);
    tracker.camOnScreen(null); // hidden, tab in the background, opacity 0, another frame...
    time.advance(5000);
    expect(tracker.of(1)).toEqual({ aiShown: true, camVisibleMs: 500 });
    expect(tracker.timing(1)).toBe(false);
  });

  it("adds up every visit of a frame and keeps frames apart", () => {
    const time = clock();
    const tracker = new ExposureTracker(time.now);
    tracker.camOnScreen(1);
    time.advance(300);
    tracker.camOnScreen(2); // moved on with the CAM shown
    time.advance(200);
    tracker.camOnScreen(1); // back
    time.advance(50);
    tracker.camOnScreen(1); // no change: the stretch goes on
    time.advance(50);
    tracker.camOnScreen(null);
    expect(tracker.of(1).camVisibleMs).toBe(400);
    expect(tracker.of(2).camVisibleMs).toBe(200);
  });

  it("never sends CAM time without ai_shown and rounds to whole milliseconds", () => {
    const time = clock();
    const tracker = new ExposureTracker(time.now);
    tracker.camOnScreen(3);
    time.advance(12.6);
    const exposure = tracker.of(3);
    expect(exposure).toEqual({ aiShown: true, camVisibleMs: 13 });
  });
});

describe("predictions", () => {
  const base: Prediction = {
    id: 1,
    frame: 5,
    task: 2,
    task_key: "diagnosis",
    model_version: 3,
    model_version_name: "v3",
    predicted_value: "neoplastic",
    confidence: 0.8,
    probabilities: [
      { value: "healthy", probability: 0.2 },
      { value: "neoplastic", probability: 0.8 },
    ],
    cam_url: null,
  };

  it("states the gate's refusal with its task, value and confidence, and nothing for a passed gate", () => {
    const refused: Prediction = {
      ...base,
      predicted_value: "",
      confidence: null,
      probabilities: [],
      gate_passed: false,
      gate: { task_key: "quality", predicted_value: "bad", confidence: 0.912, model_version: 9, model_version_name: "q1", diagnostic_values: ["good"] },
    };
    expect(gateRefusal(refused)).toBe("Not diagnostic (quality: bad 0.91)");
    expect(gateRefusal(refused, (_task, value) => value.toUpperCase())).toBe("Not diagnostic (quality: BAD 0.91)");
    expect(gateRefusal({ ...refused, gate: null })).toBe("Not diagnostic");
    expect(gateRefusal({ ...base, gate_passed: true })).toBeNull();
    expect(gateRefusal(base)).toBeNull();
  });

  it("lists the distribution most probable first and writes percentages compactly", () => {
    expect(ranked(base.probabilities).map((row) => row.value)).toEqual(["neoplastic", "healthy"]);
    expect([percent(0.8), percent(0.004), percent(1), percent(0)]).toEqual(["80 %", "0.4 %", "100 %", "0 %"]);
  });

  it("finds the tasks with an active model but no stored prediction", () => {
    expect(missingTasks([base], ["site", "diagnosis"])).toEqual(["site"]);
    expect(missingTasks([], [])).toEqual([]);
  });
});
