/**
 * JSON read without losing what JavaScript cannot hold: numbers keep their source text (so
 * 1234567890123456789 is passed on as written, not rounded to a double) and objects keep every
 * key (`__proto__` included) in order. For arguments handed to other programs (Celery tasks),
 * whose JSON readers are exact where JavaScript's is not.
 */

/** A JSON number as written. */
export class JsonNumber {
  constructor(readonly text: string) {}
  get isInteger(): boolean {
    return /^-?\d+$/.test(this.text);
  }
}

export type ExactValue = null | boolean | string | JsonNumber | ExactValue[] | ExactObject;
/** An object's entries in order, duplicates and all (the last wins for a reader, as in JSON.parse). */
export class ExactObject {
  constructor(readonly entries: [string, ExactValue][]) {}
}

export class ExactJsonError extends Error {}
/** Well-formed JSON holding a number no double can hold (`1e400`). */
export class JsonRangeError extends ExactJsonError {}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
// deno-lint-ignore no-control-regex -- JSON strings may not hold raw control characters
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const SPACE = /[ \t\n\r]*/y;
/** Deeper nesting is refused rather than recursed into (a hostile argument could overflow the stack). */
const MAX_DEPTH = 200;

/** Parses JSON text; throws ExactJsonError (with the offset) where it is not JSON. */
export function parseExact(text: string): ExactValue {
  let at = 0;
  const space = () => {
    SPACE.lastIndex = at;
    SPACE.exec(text);
    at = SPACE.lastIndex;
  };
  const fail = (what: string): never => {
    throw new ExactJsonError(`${what} at character ${at + 1}`);
  };
  const token = (re: RegExp): string | undefined => {
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) return undefined;
    at = re.lastIndex;
    return m[0];
  };
  const value = (depth: number): ExactValue => {
    if (depth > MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH}`);
    space();
    const c = text[at];
    if (c === "{") {
      at++;
      const entries: [string, ExactValue][] = [];
      space();
      if (text[at] === "}") return at++, new ExactObject(entries);
      for (;;) {
        space();
        const key = token(STRING) ?? fail("expected a string key");
        space();
        if (text[at++] !== ":") fail("expected ':'");
        entries.push([JSON.parse(key) as string, value(depth + 1)]);
        space();
        const next = text[at++];
        if (next === "}") return new ExactObject(entries);
        if (next !== ",") fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      at++;
      const items: ExactValue[] = [];
      space();
      if (text[at] === "]") return at++, items;
      for (;;) {
        items.push(value(depth + 1));
        space();
        const next = text[at++];
        if (next === "]") return items;
        if (next !== ",") fail("expected ',' or ']'");
      }
    }
    if (c === '"') return JSON.parse(token(STRING) ?? fail("a malformed string")) as string;
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, at)) return at += word.length, v;
    }
    const n = token(NUMBER) ?? fail("expected a JSON value");
    if (!Number.isFinite(Number(n))) {
      throw new JsonRangeError(`${n} is beyond a 64-bit floating-point number (Python would read it as inf)`);
    }
    return new JsonNumber(n);
  };
  const v = value(0);
  space();
  if (at !== text.length) fail("unexpected text after the value");
  return v;
}

/** The value as JSON text, numbers exactly as they were written. */
export function toJson(v: ExactValue): string {
  if (v instanceof JsonNumber) return v.text;
  if (Array.isArray(v)) return `[${v.map(toJson).join(", ")}]`;
  if (v instanceof ExactObject) {
    return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}: ${toJson(x)}`).join(", ")}}`;
  }
  return JSON.stringify(v);
}

/** Python's repr of the value as json.loads would give it (Celery's argsrepr and kwargsrepr). */
export function pyRepr(v: ExactValue): string {
  if (v === null) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "string") return `'${v.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
  if (v instanceof JsonNumber) return v.isInteger ? String(BigInt(v.text)) : pyFloat(Number(v.text));
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(", ")}]`;
  return `{${v.entries.map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(", ")}}`;
}

/** Python's float repr: always a point or an exponent; exponents with a sign and two digits. */
function pyFloat(n: number): string {
  const s = String(n);
  if (/e/.test(s)) return s.replace(/e([+-])(\d)$/, "e$10$2");
  return Number.isInteger(n) ? `${s}.0` : s;
}

/** JSON data as kmq handles broker data: objects without a prototype, integers past 2^53 as bigint. */
export type PlainValue = null | boolean | string | number | bigint | PlainValue[] | PlainObject;
export type PlainObject = { [key: string]: PlainValue };

/** The exact value as plain data (every key kept, `__proto__` included; big integers exact). */
export function toPlain(v: ExactValue): PlainValue {
  if (v instanceof JsonNumber) {
    if (!v.isInteger) return Number(v.text);
    const n = BigInt(v.text);
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  }
  if (Array.isArray(v)) return v.map(toPlain);
  if (v instanceof ExactObject) {
    const o = Object.create(null) as PlainObject;
    for (const [k, x] of v.entries) o[k] = toPlain(x);
    return o;
  }
  return v;
}

/** Plain data as JSON on one line, big integers as their digits. */
export function plainJson(v: PlainValue | undefined): string {
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return `[${v.map(plainJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${plainJson(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v ?? null);
}
