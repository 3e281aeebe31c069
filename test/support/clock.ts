import type { Clock } from '../../src/store/ports.ts';

/** A clock that moves only when a test says so. */
export class ManualClock {
  #now: number;
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }
  readonly now: Clock = () => this.#now;
  advance(ms: number): void {
    this.#now += ms;
  }
}
