// The geometry of the results' plots, without the DOM: scales, ticks, path strings, the rows of a
// forest plot, line charts, stacked histograms and dot strips. studyresults.ts and trainingrun.ts draw
// these as inline SVG (svg.ts); plots.test.ts checks them.

export interface Margins {
  top: number;
  right: number;
  bottom: number;
  left: number;
}

/** A plot's outer size and the margins around its data area (axes and labels go in the margins). */
export interface PlotFrame {
  width: number;
  height: number;
  margin: Margins;
}

export interface Area {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

export function plotArea(frame: PlotFrame): Area {
  return {
    left: frame.margin.left,
    top: frame.margin.top,
    right: frame.width - frame.margin.right,
    bottom: frame.height - frame.margin.bottom,
  };
}

/** Maps [d0, d1] linearly onto [r0, r1] (r0 > r1 for a y axis that grows upwards). */
export function linearScale(domain: readonly [number, number], range: readonly [number, number]): (value: number) => number {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0;
  return (value) => (span === 0 ? (r0 + r1) / 2 : r0 + ((value - d0) / span) * (r1 - r0));
}

/** Coordinates to two decimals: sharp enough on screen, short in the markup. */
export function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** The step between about `count` ticks from low to high (low < high): 1, 2 or 5 times a power of ten. */
function tickStep(low: number, high: number, count: number): number {
  const rough = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  // The factor nearest the rough step (on a log scale), as d3's ticks choose it.
  const error = rough / power;
  return (error >= Math.sqrt(50) ? 10 : error >= Math.sqrt(10) ? 5 : error >= Math.sqrt(2) ? 2 : 1) * power;
}

/** Round tick values from min to max, about `count` of them, at a step of 1, 2 or 5 times a power of ten. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max) || count < 1) return [];
  if (min === max) return [min];
  const [low, high] = min < max ? [min, max] : [max, min];
  const step = tickStep(low, high, count);
  const ticks = [];
  // Integer multiples of the step, so 0.1 + 0.2 never shows as 0.30000000000000004.
  for (let n = Math.ceil(low / step - 1e-9); n * step <= high + step * 1e-9; n++) {
    ticks.push(Number((n * step).toFixed(12)));
  }
  return ticks;
}

/** "M x,y L x,y …" through the points in order; "" without points. */
export function linePath(points: readonly (readonly [number, number])[]): string {
  return points.map(([x, y], index) => `${index === 0 ? "M" : "L"}${round(x)},${round(y)}`).join("");
}

export interface Tick {
  value: number;
  position: number;
  label: string;
}

function axisTicks(values: number[], scale: (value: number) => number, digits: number): Tick[] {
  return values.map((value) => ({ value, position: round(scale(value)), label: value.toFixed(digits) }));
}

export interface RocInput {
  key: string;
  fpr: readonly number[];
  tpr: readonly number[];
}

export interface RocGeometry {
  area: Area;
  /** The chance line from (0, 0) to (1, 1). */
  diagonal: string;
  curves: { key: string; path: string }[];
  xTicks: Tick[];
  yTicks: Tick[];
}

/** ROC curves in the unit square: 1 − specificity across, sensitivity up. Each curve joins the
 * reader's empirical operating points in order (sklearn's roc_curve, every threshold kept): a step
 * wherever one case changes the call, a diagonal only where positive and negative cases share a rating,
 * so the area under the drawn curve is the reported (trapezoidal) AUC. */
export function rocGeometry(curves: readonly RocInput[], frame: PlotFrame): RocGeometry {
  const area = plotArea(frame);
  const x = linearScale([0, 1], [area.left, area.right]);
  const y = linearScale([0, 1], [area.bottom, area.top]);
  const ticks = niceTicks(0, 1, 5);
  return {
    area,
    diagonal: linePath([
      [x(0), y(0)],
      [x(1), y(1)],
    ]),
    curves: curves.map((curve) => ({
      key: curve.key,
      path: linePath(curve.fpr.map((fpr, index) => [x(fpr), y(curve.tpr[index] ?? 0)] as const)),
    })),
    xTicks: axisTicks(ticks, x, 1),
    yTicks: axisTicks(ticks, y, 1),
  };
}

export interface ForestInput {
  /** The row's label, e.g. the reader. */
  label: string;
  /** What the row is coloured by, e.g. the condition. */
  group: string;
  estimate: number | null;
  low: number | null;
  high: number | null;
}

export interface ForestRow extends ForestInput {
  y: number;
  /** The estimate's x, null where it is missing (the row shows its label only). */
  x: number | null;
  /** The interval's ends, cut at the axis; null without an interval. */
  x1: number | null;
  x2: number | null;
  /** The interval reaches beyond the axis on that side (e.g. a DeLong interval above 1). */
  clippedLow: boolean;
  clippedHigh: boolean;
}

export interface ForestGeometry {
  area: Area;
  rows: ForestRow[];
  ticks: Tick[];
  rowHeight: number;
}

/** A forest plot: one row per estimate, top to bottom, on a fixed axis (`domain`, [0, 1] for
 * proportions and AUCs); interval ends beyond the axis are cut and flagged. */
export function forestGeometry(rows: readonly ForestInput[], frame: Omit<PlotFrame, "height">, rowHeight = 18, domain: readonly [number, number] = [0, 1]): ForestGeometry & { height: number } {
  const height = frame.margin.top + frame.margin.bottom + rows.length * rowHeight;
  const area = plotArea({ ...frame, height });
  const x = linearScale(domain, [area.left, area.right]);
  const [min, max] = domain;
  const clamp = (value: number) => Math.min(max, Math.max(min, value));
  return {
    area,
    height,
    rowHeight,
    ticks: axisTicks(niceTicks(min, max, 5), x, 1),
    rows: rows.map((row, index) => {
      const y = round(area.top + (index + 0.5) * rowHeight);
      const finite = (value: number | null) => value !== null && Number.isFinite(value);
      const hasInterval = finite(row.low) && finite(row.high);
      return {
        ...row,
        y,
        x: finite(row.estimate) ? round(x(clamp(row.estimate!))) : null,
        x1: hasInterval ? round(x(clamp(row.low!))) : null,
        x2: hasInterval ? round(x(clamp(row.high!))) : null,
        clippedLow: hasInterval && row.low! < min,
        clippedHigh: hasInterval && row.high! > max,
      };
    }),
  };
}

/** Colours that stay apart on the dark background, one per reader or condition, in order. */
export const PALETTE = ["#6ea8fe", "#f0a35e", "#6cc28a", "#e07bd0", "#e0d35e", "#9aa4ff", "#5ed0d0", "#ee6e6e"];

export function colour(index: number): string {
  return PALETTE[index % PALETTE.length]!;
}

// --- Training runs' plots: curves, histograms, dot strips ------------------------------------------

/** [min, max] widened to the round ticks just outside it, so that an axis starts and ends on a
 * labelled tick; a single value gets a domain around it ([0, 1] for 0). */
export function niceDomain(min: number, max: number, count = 5): [number, number] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  const [low, high] = min < max ? [min, max] : [max, min];
  if (low === high) return low === 0 ? [0, 1] : niceDomain(Math.min(0, 2 * low), Math.max(0, 2 * high), count);
  const step = tickStep(low, high, count);
  return [Number((Math.floor(low / step + 1e-9) * step).toFixed(12)), Number((Math.ceil(high / step - 1e-9) * step).toFixed(12))];
}

/** Decimals that tell evenly spaced ticks apart: 0 for whole steps, 1 for tenths, 2 for 0.05 … */
export function tickDigits(ticks: readonly number[]): number {
  if (ticks.length < 2) return ticks.length === 1 && !Number.isInteger(ticks[0]) ? 2 : 0;
  const step = Math.abs(ticks[1]! - ticks[0]!);
  return Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
}

function extent(values: readonly number[]): [number, number] | null {
  if (values.length === 0) return null;
  let low = values[0]!;
  let high = values[0]!;
  for (const value of values) {
    if (value < low) low = value;
    if (value > high) high = value;
  }
  return [low, high];
}

export interface LineSeries {
  key: string;
  /** (x, y) in data units, in drawing order; a null y leaves a gap in the line. */
  points: readonly (readonly [number, number | null])[];
}

export interface LineChartOptions {
  /** Fixed domains (e.g. [0, 1] for accuracies); else the data's, y widened to round ticks. */
  xDomain?: readonly [number, number];
  yDomain?: readonly [number, number];
  /** Whole-number x ticks only (epochs). */
  integerX?: boolean;
  /** Widen the data's y domain to take in 0 (losses start from it). */
  includeZeroY?: boolean;
  ticks?: number;
}

export interface LineChartGeometry {
  area: Area;
  xDomain: [number, number];
  yDomain: [number, number];
  /** Per series: its path (one "M…L…" run per gap-free stretch) and its points, for markers. */
  lines: { key: string; path: string; points: { x: number; y: number }[] }[];
  xTicks: Tick[];
  yTicks: Tick[];
}

/** Lines through each series' points on shared axes (training curves, a reliability diagram). */
export function lineChartGeometry(series: readonly LineSeries[], frame: PlotFrame, options: LineChartOptions = {}): LineChartGeometry {
  const area = plotArea(frame);
  const count = options.ticks ?? 5;
  const xs = series.flatMap((line) => line.points.map(([x]) => x)).filter(Number.isFinite);
  const ys = series
    .flatMap((line) => line.points.map(([, y]) => y))
    .filter((y): y is number => y !== null && Number.isFinite(y));
  const xDomain: [number, number] = options.xDomain ? [options.xDomain[0], options.xDomain[1]] : (extent(xs) ?? [0, 1]);
  let yDomain: [number, number];
  if (options.yDomain) {
    yDomain = [options.yDomain[0], options.yDomain[1]];
  } else {
    const [low, high] = extent(ys) ?? [0, 1];
    yDomain = options.includeZeroY ? niceDomain(Math.min(0, low), Math.max(0, high), count) : niceDomain(low, high, count);
  }
  const x = linearScale(xDomain, [area.left, area.right]);
  const y = linearScale(yDomain, [area.bottom, area.top]);
  const lines = series.map((line) => {
    const stretches: (readonly [number, number])[][] = [[]];
    const points: { x: number; y: number }[] = [];
    for (const [px, py] of line.points) {
      if (py === null || !Number.isFinite(py) || !Number.isFinite(px)) {
        if (stretches.at(-1)!.length > 0) stretches.push([]);
        continue;
      }
      const point = [x(px), y(py)] as const;
      stretches.at(-1)!.push(point);
      points.push({ x: round(point[0]), y: round(point[1]) });
    }
    return { key: line.key, path: stretches.map((stretch) => linePath(stretch)).join(""), points };
  });
  let xValues = niceTicks(xDomain[0], xDomain[1], count);
  if (options.integerX) xValues = xValues.filter(Number.isInteger);
  const yValues = niceTicks(yDomain[0], yDomain[1], count);
  return {
    area,
    xDomain,
    yDomain,
    lines,
    xTicks: axisTicks(xValues, x, options.integerX ? 0 : tickDigits(xValues)),
    yTicks: axisTicks(yValues, y, tickDigits(yValues)),
  };
}

export interface BarLayer {
  key: string;
  /** One count per bin. */
  counts: readonly number[];
}

export interface Bar {
  key: string;
  bin: number;
  count: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface BarsGeometry {
  area: Area;
  bars: Bar[];
  /** The top of the count axis: a round number at or above the tallest stack. */
  yMax: number;
  xTicks: Tick[];
  yTicks: Tick[];
}

/** A histogram over the bins between `edges` (n + 1 edges for n bins), each bin's layers stacked
 * bottom-up in the order given (e.g. correct under wrong); a layer with nothing in a bin draws
 * nothing there. */
export function stackedBarsGeometry(edges: readonly number[], layers: readonly BarLayer[], frame: PlotFrame, gap = 1): BarsGeometry {
  const area = plotArea(frame);
  const bins = Math.max(0, edges.length - 1);
  const first = edges[0] ?? 0;
  const last = edges[bins] ?? 1;
  const totals = Array.from({ length: bins }, (_, bin) => layers.reduce((sum, layer) => sum + Math.max(0, layer.counts[bin] ?? 0), 0));
  const yMax = niceDomain(0, Math.max(1, ...totals), 4)[1];
  const x = linearScale([first, last], [area.left, area.right]);
  const y = linearScale([0, yMax], [area.bottom, area.top]);
  const bars: Bar[] = [];
  for (let bin = 0; bin < bins; bin++) {
    const left = x(edges[bin]!) + gap / 2;
    const right = x(edges[bin + 1]!) - gap / 2;
    let base = 0;
    for (const layer of layers) {
      const count = layer.counts[bin] ?? 0;
      if (!(count > 0)) continue;
      const top = y(base + count);
      bars.push({ key: layer.key, bin, count, x: round(left), y: round(top), width: round(Math.max(0, right - left)), height: round(y(base) - top) });
      base += count;
    }
  }
  const xValues = niceTicks(first, last, 5);
  return {
    area,
    bars,
    yMax,
    xTicks: axisTicks(xValues, x, tickDigits(xValues)),
    yTicks: axisTicks(niceTicks(0, yMax, 4).filter(Number.isInteger), y, 0),
  };
}

export interface Dot {
  key: string;
  value: number;
  cx: number;
  cy: number;
}

export interface DotStripGeometry {
  area: Area;
  height: number;
  dots: Dot[];
  ticks: Tick[];
}

/** One dot per value along an axis (`domain`, [0, 1] for accuracies), smallest first; dots that
 * would overlap pile upwards, so every value stays visible and a pile shows how many share it. The
 * plot is as tall as its highest pile (room for `minRows` dots at least). */
export function dotStripGeometry(
  values: readonly { key: string; value: number }[],
  frame: Omit<PlotFrame, "height">,
  radius = 4,
  domain: readonly [number, number] = [0, 1],
  minRows = 3,
): DotStripGeometry {
  const pitch = 2 * radius + 1;
  const left = frame.margin.left;
  const right = frame.width - frame.margin.right;
  const x = linearScale(domain, [left, right]);
  const [min, max] = domain;
  const sorted = values.filter((item) => Number.isFinite(item.value)).sort((a, b) => a.value - b.value);
  const piles = new Map<number, number>();
  const placed = sorted.map((item) => {
    const cx = x(Math.min(max, Math.max(min, item.value)));
    const column = Math.round((cx - left) / pitch);
    const level = piles.get(column) ?? 0;
    piles.set(column, level + 1);
    return { item, cx, level };
  });
  const rows = Math.max(minRows, ...piles.values());
  const height = frame.margin.top + frame.margin.bottom + rows * pitch + 1;
  const area = plotArea({ ...frame, height });
  return {
    area,
    height,
    dots: placed.map(({ item, cx, level }) => ({ key: item.key, value: item.value, cx: round(cx), cy: round(area.bottom - radius - 1 - level * pitch) })),
    ticks: axisTicks(niceTicks(min, max, 5), x, tickDigits(niceTicks(min, max, 5))),
  };
}
