import type { Registry } from 'prom-client';

/** One series of a histogram: cumulative-on-read bucket counts, sum, count. */
class Series {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly #upperBounds: readonly number[];
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(labels: Readonly<Record<string, string | number>>, upperBounds: readonly number[]) {
    this.labels = labels;
    this.#upperBounds = upperBounds;
    this.counts = new Array<number>(upperBounds.length).fill(0);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    this.sum += value;
    this.count += 1;
    const bounds = this.#upperBounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]! += 1;
        return;
      }
    }
  }
}

export interface HistogramSeries {
  observe(value: number): void;
}

export interface HistogramOptions<Label extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly Label[];
  readonly buckets: readonly number[];
  readonly registry: Registry;
}

/**
 * A Prometheus histogram for the request hot path. prom-client's Histogram
 * validates and hashes the label object on every `observe`, which costs more
 * than the rest of a health check's bookkeeping; here a caller resolves a
 * series once (`series(...)`) and then only adds to numbers. The registry
 * renders it like any prom-client metric, through `get()`.
 */
export class FastHistogram<Label extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #labelNames: readonly Label[];
  readonly #upperBounds: readonly number[];
  readonly #series = new Map<string, Series>();

  constructor(options: HistogramOptions<Label>) {
    this.name = options.name;
    this.help = options.help;
    this.#labelNames = options.labelNames;
    this.#upperBounds = [...options.buckets].sort((a, b) => a - b);
    options.registry.registerMetric(this as never);
  }

  /** The series of one label set; keep it and call `observe` on it. */
  series(labels: Readonly<Record<Label, string | number>>): HistogramSeries {
    const key = this.#labelNames.map((name) => String(labels[name])).join('\u0000');
    let series = this.#series.get(key);
    if (series === undefined) {
      const copy: Record<string, string | number> = {};
      for (const name of this.#labelNames) copy[name] = labels[name];
      series = new Series(copy, this.#upperBounds);
      this.#series.set(key, series);
    }
    return series;
  }

  observe(labels: Readonly<Record<Label, string | number>>, value: number): void {
    this.series(labels).observe(value);
  }

  /** prom-client's metric protocol: what the registry renders at scrape time. */
  get(): { name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; value: number; metricName: string }[] } {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const series of this.#series.values()) {
      let cumulative = 0;
      this.#upperBounds.forEach((bound, i) => {
        cumulative += series.counts[i]!;
        values.push({ labels: { ...series.labels, le: bound }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { ...series.labels, le: '+Inf' }, value: series.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...series.labels }, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...series.labels }, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
