/**
 * Durations as operators write them in config and on the command line
 * (`24h`, `10m`): a whole number and one unit. Anything else is refused
 * rather than guessed (is `10` seconds or minutes?).
 */
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Milliseconds of `text`; throws a RangeError naming the accepted form. */
export function parseDuration(text: string): number {
  const match = /^([1-9][0-9]{0,8})(s|m|h|d)$/.exec(text.trim());
  if (match === null) throw new RangeError(`not a duration: "${text}" (a whole number and s, m, h or d, such as 10m or 24h)`);
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}
