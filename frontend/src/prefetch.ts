// Decoding frames ahead of time, so that moving on shows an image that is already decoded.
//
// `want` is told which frames should be ready (the cursor's window); it starts loads for the new ones
// in the order given and forgets the ones that fell out of the window. A load is an Image whose
// decode() has resolved: inserting it into the page costs no network and no decoding.

export type Loader<T> = (url: string) => Promise<T>;

interface Entry<T> {
  url: string;
  promise: Promise<T>;
  value: T | undefined;
  failed: boolean;
}

export class Prefetcher<T> {
  private readonly cache = new Map<number, Entry<T>>();
  loads = 0;

  constructor(private readonly loader: Loader<T>) {}

  /** Frames (id and image URL) to keep ready; others are dropped. */
  want(frames: readonly { id: number; image_url: string }[]): void {
    const keep = new Set(frames.map((frame) => frame.id));
    for (const id of [...this.cache.keys()]) if (!keep.has(id)) this.cache.delete(id);
    for (const frame of frames) this.load(frame.id, frame.image_url);
  }

  /** The decoded image if it is ready now. */
  ready(id: number): T | undefined {
    return this.cache.get(id)?.value;
  }

  isLoading(id: number): boolean {
    const entry = this.cache.get(id);
    return entry !== undefined && entry.value === undefined && !entry.failed;
  }

  cachedIds(): number[] {
    return [...this.cache.keys()];
  }

  /** The decoded image, loading it if needed; a failed load is tried again on the next call. */
  load(id: number, url: string): Promise<T> {
    const existing = this.cache.get(id);
    if (existing && existing.url === url && !existing.failed) return existing.promise;
    this.loads += 1;
    const entry: Entry<T> = { url, promise: this.loader(url), value: undefined, failed: false };
    entry.promise.then(
      (value) => {
        entry.value = value;
      },
      () => {
        entry.failed = true;
      },
    );
    this.cache.set(id, entry);
    return entry.promise;
  }
}

/** Browser loader: fetch and decode off the main thread before the image is ever shown. */
export async function decodeImage(url: string): Promise<HTMLImageElement> {
  const image = new Image();
  image.decoding = "async";
  image.src = url;
  await image.decode();
  return image;
}
