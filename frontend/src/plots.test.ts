import { describe, expect, it } from "vitest";
import {
  colour,
  dotStripGeometry,
  forestGeometry,
  lineChartGeometry,
  linePath,
  linearScale,
  niceDomain,
  niceTicks,
  plotArea,
  rocGeometry,
  stackedBarsGeometry,
  tickDigits,
  PALETTE,
} from "./plots";

const SQUARE = { width: 120, height: 120, margin: { top: 10, right: 10, bottom: 10, left: 10 } };

describe("scales and ticks", () => {
  it("maps the domain's ends onto the range's, upwards for a y axis", () => {
    const y = linearScale([0, 1], [110, 10]);
    expect(y(0)).toBe(110);
    expect(y(1)).toBe(10);
    expect(y(0.25)).toBe(85);
    expect(linearScale([2, 2], [0, 10])(2)).toBe(5);
  });

  it("places round ticks at 1, 2 or 5 times a power of ten", () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 1, 10)).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    expect(niceTicks(-0.3, 0.45, 3)).toEqual([-0.2, 0, 0.2, 0.4]);
    expect(niceTicks(0, 250, 5)).toEqual([0, 50, 100, 150, 200, 250]);
    expect(niceTicks(3, 3)).toEqual([3]);
    expect(niceTicks(0, Number.NaN)).toEqual([]);
  });

  it("writes path strings with rounded coordinates", () => {
    expect(linePath([])).toBe("");
    expect(linePath([[0, 1], [2.3333, 4.005]])).toBe("M0,1L2.33,4.01");
  });

  it("leaves the margins around the data area", () => {
    expect(plotArea(SQUARE)).toEqual({ left: 10, top: 10, right: 110, bottom: 110 });
  });
});

describe("ROC geometry", () => {
  it("draws each reader's operating points in order, 1 − specificity across and sensitivity up", () => {
    const geometry = rocGeometry(
      [
        { key: "alice", fpr: [0, 0, 0.5, 1], tpr: [0, 0.5, 1, 1] },
        { key: "bob", fpr: [0, 1], tpr: [0, 1] },
      ],
      SQUARE,
    );
    // (0,0) is the bottom-left corner of the data area, (1,1) the top-right.
    expect(geometry.curves[0]).toEqual({ key: "alice", path: "M10,110L10,60L60,10L110,10" });
    expect(geometry.curves[1]!.path).toBe("M10,110L110,10");
    expect(geometry.diagonal).toBe("M10,110L110,10");
    expect(geometry.xTicks.map((tick) => [tick.label, tick.position])).toEqual([
      ["0.0", 10], ["0.2", 30], ["0.4", 50], ["0.6", 70], ["0.8", 90], ["1.0", 110],
    ]);
    expect(geometry.yTicks[0]).toEqual({ value: 0, position: 110, label: "0.0" });
    expect(geometry.yTicks.at(-1)).toEqual({ value: 1, position: 10, label: "1.0" });
  });
});

describe("forest geometry", () => {
  const frame = { width: 220, margin: { top: 0, right: 10, bottom: 20, left: 10 } };

  it("puts one row per estimate, top to bottom, with its interval on a [0, 1] axis", () => {
    const geometry = forestGeometry(
      [
        { label: "alice", group: "unaided", estimate: 0.5, low: 0.25, high: 0.75 },
        { label: "alice", group: "cam", estimate: 1, low: 0.6, high: 1 },
      ],
      frame,
      20,
    );
    expect(geometry.height).toBe(60);
    expect(geometry.area).toEqual({ left: 10, top: 0, right: 210, bottom: 40 });
    expect(geometry.rows.map((row) => [row.y, row.x, row.x1, row.x2])).toEqual([
      [10, 110, 60, 160],
      [30, 210, 130, 210],
    ]);
    expect(geometry.ticks.map((tick) => tick.position)).toEqual([10, 50, 90, 130, 170, 210]);
  });

  it("cuts an interval beyond the axis (a DeLong interval above 1) and flags it", () => {
    const [row] = forestGeometry([{ label: "bob", group: "cam", estimate: 0.75, low: 0.26, high: 1.24 }], frame, 20).rows;
    expect(row!.x2).toBe(210);
    expect(row!.clippedHigh).toBe(true);
    expect(row!.clippedLow).toBe(false);
    expect(row!.x1).toBe(62);
  });

  it("keeps a row without an estimate or interval, with nothing to draw", () => {
    const [row] = forestGeometry([{ label: "carol", group: "cam", estimate: null, low: null, high: null }], frame).rows;
    expect(row).toMatchObject({ x: null, x1: null, x2: null, clippedLow: false, clippedHigh: false });
  });
});

it("cycles through the palette", () => {
  expect(colour(0)).toBe(PALETTE[0]);
  expect(colour(PALETTE.length + 1)).toBe(PALETTE[1]);
});

describe("round domains and tick labels", () => {
  it("widens a domain to the round ticks just outside it", () => {
    expect(niceDomain(0, 0.69)).toEqual([0, 0.7]);
    expect(niceDomain(0.13, 2.4)).toEqual([0, 2.5]);
    expect(niceDomain(3, 250)).toEqual([0, 250]);
    expect(niceDomain(0, 0)).toEqual([0, 1]);
    expect(niceDomain(0.69, 0.69)).toEqual([0, 1.4]);
    expect(niceDomain(Number.NaN, 1)).toEqual([0, 1]);
  });

  it("writes as many decimals as the step between ticks needs", () => {
    expect(tickDigits([0, 0.2, 0.4])).toBe(1);
    expect(tickDigits([0, 0.05, 0.1])).toBe(2);
    expect(tickDigits([0, 5, 10])).toBe(0);
    expect(tickDigits([0, 1])).toBe(0);
    expect(tickDigits([0.5])).toBe(2);
    expect(tickDigits([])).toBe(0);
  });
});

describe("line chart geometry", () => {
  it("joins each series' points, leaves a gap at a missing value and starts the y axis at 0 for losses", () => {
    const geometry = lineChartGeometry(
      [
        { key: "fold_0", points: [[1, 1], [2, null], [3, 0.5]] },
        { key: "fold_1", points: [[1, 2], [3, 0]] },
      ],
      SQUARE,
      { integerX: true, includeZeroY: true },
    );
    expect(geometry.xDomain).toEqual([1, 3]);
    expect(geometry.yDomain).toEqual([0, 2]);
    // Epoch 1 is the left edge, 3 the right; loss 0 the bottom, 2 the top.
    expect(geometry.lines[0]).toEqual({ key: "fold_0", path: "M10,60M110,85", points: [{ x: 10, y: 60 }, { x: 110, y: 85 }] });
    expect(geometry.lines[1]!.path).toBe("M10,10L110,110");
    expect(geometry.xTicks.map((tick) => [tick.label, tick.position])).toEqual([["1", 10], ["2", 60], ["3", 110]]);
    expect(geometry.yTicks.map((tick) => tick.label)).toEqual(["0.0", "0.5", "1.0", "1.5", "2.0"]);
  });

  it("keeps fixed domains (a reliability diagram on the unit square) and draws nothing for an empty series", () => {
    const geometry = lineChartGeometry(
      [
        { key: "chance", points: [[0, 0], [1, 1]] },
        { key: "pooled", points: [[0.25, 0.5]] },
        { key: "empty", points: [] },
      ],
      SQUARE,
      { xDomain: [0, 1], yDomain: [0, 1] },
    );
    expect(geometry.lines.map((line) => line.path)).toEqual(["M10,110L110,10", "M35,60", ""]);
    expect(geometry.yTicks.at(-1)).toEqual({ value: 1, position: 10, label: "1.0" });
  });
});

describe("stacked histogram geometry", () => {
  it("stacks each bin's layers bottom-up on a count axis from 0, skipping empty layers", () => {
    const geometry = stackedBarsGeometry(
      [0, 0.5, 1],
      [
        { key: "correct", counts: [3, 1] },
        { key: "wrong", counts: [0, 2] },
      ],
      SQUARE,
    );
    expect(geometry.yMax).toBe(3);
    expect(geometry.bars).toEqual([
      { key: "correct", bin: 0, count: 3, x: 10.5, y: 10, width: 49, height: 100 },
      { key: "correct", bin: 1, count: 1, x: 60.5, y: 76.67, width: 49, height: 33.33 },
      { key: "wrong", bin: 1, count: 2, x: 60.5, y: 10, width: 49, height: 66.67 },
    ]);
    expect(geometry.yTicks.map((tick) => tick.label)).toEqual(["0", "1", "2", "3"]);
    expect(geometry.xTicks.map((tick) => tick.position)).toEqual([10, 30, 50, 70, 90, 110]);
  });

  it("keeps a count axis up to 1 when every bin is empty", () => {
    const geometry = stackedBarsGeometry([0, 1], [{ key: "correct", counts: [0] }], SQUARE);
    expect(geometry.bars).toEqual([]);
    expect(geometry.yMax).toBe(1);
    expect(geometry.yTicks.map((tick) => tick.label)).toEqual(["0", "1"]);
  });
});

describe("dot strip geometry", () => {
  const frame = { width: 120, margin: { top: 0, right: 10, bottom: 20, left: 10 } };

  it("puts one dot per value, smallest first, piling up dots that would overlap", () => {
    const geometry = dotStripGeometry(
      [
        { key: "a", value: 1 },
        { key: "b", value: 1 },
        { key: "c", value: 0.5 },
        { key: "d", value: 0.52 },
      ],
      frame,
    );
    // Three rows of 9 px (radius 4 and a pixel between dots) at least, above the 20 px margin.
    expect(geometry.height).toBe(48);
    expect(geometry.dots.map((dot) => [dot.key, dot.cx, dot.cy])).toEqual([
      ["c", 60, 23],
      ["d", 62, 14],
      ["a", 110, 23],
      ["b", 110, 14],
    ]);
    expect(geometry.ticks.map((tick) => tick.label)).toEqual(["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
  });

  it("grows with its highest pile and leaves out what is not a number", () => {
    const values = [0.8, 0.8, 0.8, 0.8, Number.NaN].map((value, index) => ({ key: String(index), value }));
    const geometry = dotStripGeometry(values, frame);
    expect(geometry.dots).toHaveLength(4);
    expect(geometry.height).toBe(57);
    expect(geometry.dots.map((dot) => dot.cy)).toEqual([32, 23, 14, 5]);
  });
});
