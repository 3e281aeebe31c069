/**
 * The latest call durations of one plugin, for `plugin status` (p50, p99):
 * a fixed ring of samples, so memory stays bounded whatever the traffic.
 */
const SAMPLES = 2048;

export class LatencyWindow {
  readonly #samples = new Float64Array(SAMPLES);
  #count = 0;

  record(milliseconds: number): void {
    this.#samples[this.#count % SAMPLES] = milliseconds;
    this.#count++;
  }

  /** The q-quantile (0..1) of the samples kept, in ms; null before the first call. */
  quantile(q: number): number | null {
    const size = Math.min(this.#count, SAMPLES);
    if (size === 0) return null;
    const sorted = this.#samples.slice(0, size).sort();
    return sorted[Math.min(size - 1, Math.ceil(q * size) - 1)]!;
  }

  get calls(): number {
    return this.#count;
  }
}
