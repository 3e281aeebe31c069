/**
 * How many copies of their data a person may download from the account
 * page per day (privacy.exportsPerDay). GDPR Art. 15(3): the first copy is
 * free and further ones may be limited; an export reads every place the
 * data map names and the audit log's proofs, so an unlimited button is
 * also a cheap way to load the server.
 *
 * A counter in the hot store, so every instance sees it: a fixed window
 * of 24 hours from the day's first export. It counts first and decides on
 * the count (as the sign-in throttle does), so parallel requests each see
 * another number and no more than the limit get through.
 */
import type { HotStore } from '../store/index.ts';

const DAY_MS = 24 * 60 * 60_000;
/** Named in the data map (place `privacy-exports`). */
export const EXPORT_LIMIT_PREFIX = 'privacy:exports:';

export type ExportAllowance = { readonly allowed: true; readonly left: number } | { readonly allowed: false; readonly retryAfterSeconds: number };

export class ExportLimit {
  readonly #hot: HotStore;
  readonly #perDay: number;

  constructor(options: { hot: HotStore; perDay: number }) {
    this.#hot = options.hot;
    this.#perDay = options.perDay;
  }

  /** Takes one export of the person's allowance, or says how long until the window ends. */
  async take(userId: string): Promise<ExportAllowance> {
    const count = await this.#hot.increment(`${EXPORT_LIMIT_PREFIX}${userId}`, DAY_MS);
    if (count.value > this.#perDay) return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(count.ttlMs / 1000)) };
    return { allowed: true, left: this.#perDay - count.value };
  }
}
