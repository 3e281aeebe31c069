// autocannon ships no types and @types/autocannon is not installed: declare
// only what the benches use.
declare module 'autocannon' {
  interface Options {
    url: string;
    connections?: number;
    pipelining?: number;
    /** Seconds. */
    duration?: number;
    timeout?: number;
  }
  interface Histogram {
    average: number;
    mean: number;
    p50: number;
    p90: number;
    p99: number;
    max: number;
    total: number;
  }
  export interface Result {
    /** Seconds the run really took. */
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    /** Milliseconds, truncated to whole milliseconds. */
    latency: Histogram;
    /** Requests per one-second sample; `total` counts every response. */
    requests: Histogram & { sent: number };
  }
  /** A run: awaitable for its result, and an emitter of every response. */
  interface Instance extends PromiseLike<Result> {
    on(event: 'response', listener: (client: unknown, statusCode: number, bytes: number, responseTimeMs: number) => void): this;
  }
  function autocannon(options: Options): Instance;
  export default autocannon;
}
