/** Minimal assertions: @std/assert lives on JSR, which our machines cannot reach. */
export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  const a = JSON.stringify(actual, replacer);
  const e = JSON.stringify(expected, replacer);
  if (a !== e) throw new AssertionError(`${message ? message + ": " : ""}expected ${e}, got ${a}`);
}

export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  if (!pattern.test(actual)) {
    throw new AssertionError(
      `${message ? message + ": " : ""}${JSON.stringify(actual)} does not match ${pattern}`,
    );
  }
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: Array.from(value) };
  if (typeof value === "bigint") return `${value}n`;
  return value;
}
