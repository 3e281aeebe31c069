/**
 * How long a response may be reused: `max-age` of Cache-Control minus the
 * response's `Age` (RFC 9111 sections 5.2.2.1 and 4.2.3), clamped to the
 * caller's bounds. `no-store` and `no-cache` count as zero, and so does a
 * response that says nothing: the caller's minimum then applies.
 */
export interface MaxAgeBounds {
  /** Seconds; the least time keys are kept, so that a `no-store` issuer is not fetched per request. */
  readonly min: number;
  /** Seconds; the most time keys are kept, whatever the issuer says. */
  readonly max: number;
}

export function freshSeconds(cacheControl: string | null, age: string | null, bounds: MaxAgeBounds): number {
  let seconds = 0;
  if (cacheControl !== null) {
    const directives = cacheControl.toLowerCase().split(',').map((part) => part.trim());
    const maxAge = directives.map((directive) => /^max-age\s*=\s*"?(\d{1,10})"?$/.exec(directive)).find((match) => match !== null);
    if (maxAge !== undefined && !directives.includes('no-store') && !directives.includes('no-cache')) seconds = Number(maxAge[1]);
  }
  const aged = age !== null && /^\d{1,10}$/.test(age.trim()) ? Number(age.trim()) : 0;
  return Math.min(bounds.max, Math.max(bounds.min, seconds - aged));
}
