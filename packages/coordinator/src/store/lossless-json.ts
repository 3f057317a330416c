/** The tag a non-finite number travels under: JSON has no NaN or ±Infinity and would turn them into null. */
const FLOAT_TAG = '$float';

/**
 * JSON text for `value` that keeps NaN and ±Infinity (as `{"$float":"NaN"}` and the like). Round
 * records hold NaN losses for rounds without an evaluation; plain JSON would bring them back as null.
 * `undefined` becomes `null`.
 */
export function toLosslessJson(value: unknown): string {
  return JSON.stringify(value ?? null, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? { [FLOAT_TAG]: String(v) } : v));
}

/** Parses text written by {@link toLosslessJson}, restoring the non-finite numbers. */
export function fromLosslessJson(text: string): unknown {
  return JSON.parse(text, (_key, v: unknown) => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const keys = Object.keys(v);
      const tagged = (v as Record<string, unknown>)[FLOAT_TAG];
      if (keys.length === 1 && typeof tagged === 'string') return Number(tagged);
    }
    return v;
  });
}
