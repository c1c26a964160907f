// Instrumentation for bench/browser_label_bench.py: the time from a keypress (label or next) to the
// next frame painted. `start` is called at keydown; `painted` when the new frame's decoded image is
// in the page, and records the time at the next animation frame (the one that paints it).

export interface PerfSample {
  frame: number;
  ms: number;
  prefetched: boolean;
}

export interface ClearPerf {
  prefetch: boolean;
  /** Frames painted so far (every frame shown, with or without a keypress before it). */
  shown: number;
  /** The frame on screen. */
  frame: number | null;
  samples: PerfSample[];
  pending: number | null;
}

declare global {
  interface Window {
    __clearPerf?: ClearPerf;
  }
}

export function perfInit(prefetch: boolean): ClearPerf {
  const perf: ClearPerf = { prefetch, shown: 0, frame: null, samples: [], pending: null };
  window.__clearPerf = perf;
  return perf;
}

export function perfStart(perf: ClearPerf): void {
  perf.pending = performance.now();
}

export function perfPainted(perf: ClearPerf, frame: number, prefetched: boolean): void {
  const start = perf.pending;
  perf.pending = null;
  requestAnimationFrame(() => {
    const end = performance.now();
    if (start !== null) {
      perf.samples.push({ frame, ms: end - start, prefetched });
      performance.measure("clear:keypress-to-frame", { start, end });
    }
    perf.frame = frame;
    perf.shown += 1;
  });
}
