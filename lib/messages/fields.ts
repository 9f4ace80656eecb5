/**
 * Header values with their AMQP wire type. JSON carries strings, booleans, null, numbers, tables
 * and arrays as they are; every other wire type travels as a {@link TypedField}, written in JSON
 * as a one-key object (`{"$int64": "9007199254740993"}`), so a dump replays with its exact types.
 *
 * Plain values map to one wire type each: string → S, boolean → t, null → V, integer → I (signed
 * 32-bit) or l (64-bit, outside I's range), other number → d (64-bit float), object → F,
 * array → A. Any other type (or an integer or double that JSON would read back as another
 * type) is a TypedField.
 */
import { Buffer } from "node:buffer";

/** AMQP 0-9-1 field type tags as RabbitMQ uses them. */
export type FieldTag = "b" | "B" | "s" | "u" | "i" | "l" | "f" | "d" | "D" | "T" | "x";

export interface Decimal {
  scale: number;
  /** The unscaled signed 32-bit value: 12.345 is {scale: 3, value: 12345}. */
  value: number;
}

/** A header value whose type JSON alone would lose. */
export class TypedField {
  constructor(readonly tag: FieldTag, readonly value: number | bigint | Uint8Array | Decimal) {}
}

/**
 * A table or array nested deeper than {@link MAX_DEPTH} in a received header, kept as its wire
 * bytes (type tag, length and content) so it is shown and passed on unchanged without decoding it.
 * JSON: `{"$raw": "<base64 of those bytes>"}`.
 */
export class RawField {
  constructor(readonly bytes: Uint8Array) {}
}

export type FieldValue =
  | string
  | RawField
  | boolean
  | null
  | number
  | TypedField
  | FieldValue[]
  | { [key: string]: FieldValue };

export type FieldTable = { [key: string]: FieldValue };

/**
 * Sets a key as an own property, whatever its name: `table[key] = v` with the key `__proto__`
 * would set the object's prototype instead, and the header would vanish.
 */
export function putKey<T>(table: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(table, key, { value, enumerable: true, writable: true, configurable: true });
}

const JSON_NAMES: Record<FieldTag, string> = {
  b: "$int8",
  B: "$uint8",
  s: "$int16",
  u: "$uint16",
  i: "$uint32",
  l: "$int64",
  f: "$float",
  d: "$double",
  D: "$decimal",
  T: "$timestamp",
  x: "$bytes",
};
const TAGS_BY_NAME = new Map(Object.entries(JSON_NAMES).map(([tag, name]) => [name, tag as FieldTag]));
const RAW = "$raw";
/** A real table whose only key starts with `$` is wrapped, so it never reads as a typed value. */
const TABLE = "$table";

const INT_RANGES: Partial<Record<FieldTag, [number, number]>> = {
  b: [-128, 127],
  B: [0, 255],
  s: [-32768, 32767],
  u: [0, 65535],
  i: [0, 4294967295],
};

/** AMQP timestamps are unsigned 64-bit seconds. */
const MAX_UINT64 = 2n ** 64n - 1n;

/** A 64-bit integer for JSON: a number where JSON readers keep it exact, else its digits as a string. */
export function exactJson(n: bigint): number | string {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : String(n);
}

/** An integer from JSON (a safe number, or digits in a string) within [min, max], else undefined. */
export function exactInteger(raw: unknown, min: bigint, max: bigint): bigint | undefined {
  let n: bigint;
  if (typeof raw === "number" && Number.isSafeInteger(raw)) n = BigInt(raw);
  else if (typeof raw === "string" && /^-?\d{1,30}$/.test(raw)) n = BigInt(raw);
  else return undefined;
  return n >= min && n <= max ? n : undefined;
}

/** A timestamp (seconds) from JSON; throws FieldError naming `name`. */
export function timestampFromJson(raw: unknown, name: string): bigint {
  const n = exactInteger(raw, 0n, MAX_UINT64);
  if (n === undefined) {
    throw new FieldError(
      `${name} takes whole seconds since the epoch from 0 to ${MAX_UINT64} (a number, or its digits as a string)`,
    );
  }
  return n;
}

function floatToJson(n: number): number | string {
  return Number.isFinite(n) ? n : String(n);
}

/** The JSON form of a header value (what `--format json` writes). */
export function fieldToJson(v: FieldValue): unknown {
  if (v instanceof RawField) return { [RAW]: Buffer.from(v.bytes).toString("base64") };
  if (v instanceof TypedField) {
    const name = JSON_NAMES[v.tag];
    switch (v.tag) {
      case "l":
        return { [name]: String(v.value) };
      case "T":
        return { [name]: exactJson(BigInt(v.value as bigint | number)) };
      case "f":
      case "d":
        return { [name]: floatToJson(v.value as number) };
      case "D": {
        const { scale, value } = v.value as Decimal;
        return { [name]: decimalToString(scale, value) };
      }
      case "x":
        return { [name]: Buffer.from(v.value as Uint8Array).toString("base64") };
      default:
        return { [name]: v.value };
    }
  }
  if (Array.isArray(v)) return v.map(fieldToJson);
  if (v !== null && typeof v === "object") {
    const table = tableToJson(v);
    const keys = Object.keys(table);
    return keys.length === 1 && keys[0]!.startsWith("$") ? { [TABLE]: table } : table;
  }
  return v;
}

export function tableToJson(t: FieldTable): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(t)) putKey(out, k, fieldToJson(v));
  return out;
}

function decimalToString(scale: number, value: number): string {
  const sign = value < 0 ? "-" : "";
  const digits = String(Math.abs(value)).padStart(scale + 1, "0");
  return scale === 0 ? `${sign}${digits}` : `${sign}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/** A header value that is not what its JSON claims (bad typed form, out of range). */
export class FieldError extends Error {}

function parseFloatJson(raw: unknown, name: string): number {
  if (typeof raw === "number") return raw;
  // RabbitMQ (Erlang) has no NaN or Infinity: such a header crashes the broker's side of the
  // connection on every attempt, so it is refused here, before anything is sent
  if (raw === "NaN" || raw === "Infinity" || raw === "-Infinity") {
    throw new FieldError(`${name} ${raw} cannot be sent: RabbitMQ refuses NaN and Infinity; use a number`);
  }
  throw new FieldError(`${name} takes a number`);
}

function typedFromJson(tag: FieldTag, name: string, raw: unknown): TypedField {
  switch (tag) {
    case "l": {
      if (typeof raw !== "string" && typeof raw !== "number") {
        throw new FieldError(`${name} takes an integer`);
      }
      let n: bigint;
      try {
        n = BigInt(raw);
      } catch {
        throw new FieldError(`${name} takes an integer, not ${JSON.stringify(raw)}`);
      }
      if (n < -(2n ** 63n) || n >= 2n ** 63n) {
        throw new FieldError(`${name} ${raw} is out of the 64-bit range`);
      }
      return new TypedField("l", n);
    }
    case "f":
    case "d":
      return new TypedField(tag, parseFloatJson(raw, name));
    case "T":
      return new TypedField("T", timestampFromJson(raw, name));
    case "D": {
      const m = typeof raw === "string" ? /^(-?)(\d+)(?:\.(\d+))?$/.exec(raw) : null;
      if (!m) throw new FieldError(`${name} takes a decimal string such as "12.345"`);
      const [, sign = "", whole = "", frac = ""] = m;
      const value = Number(`${sign}${whole}${frac}`);
      if (frac.length > 255 || value < -(2 ** 31) || value >= 2 ** 31) {
        throw new FieldError(`${name} ${raw} does not fit AMQP's decimal (scale ≤ 255, 32-bit digits)`);
      }
      return new TypedField("D", { scale: frac.length, value: value === 0 ? 0 : value });
    }
    case "x":
      if (typeof raw !== "string" || !BASE64.test(raw)) {
        throw new FieldError(`${name} takes base64 text`);
      }
      return new TypedField("x", new Uint8Array(Buffer.from(raw, "base64")));
    default: {
      const [min, max] = INT_RANGES[tag]!;
      if (typeof raw !== "number" || !Number.isInteger(raw) || raw < min || raw > max) {
        throw new FieldError(`${name} takes an integer from ${min} to ${max}`);
      }
      return new TypedField(tag, raw);
    }
  }
}

/**
 * Tables and arrays nest at most this deep, on the way in and out: deeper values would overflow
 * the stack of a recursive codec (kmq's and other clients'), and no real header needs them.
 */
export const MAX_DEPTH = 100;

/** Reads a header value from its JSON form; throws FieldError naming the problem. */
export function fieldFromJson(v: unknown, depth = 0): FieldValue {
  if (v === null || typeof v === "string" || typeof v === "boolean") return v;
  const deeper = (): number => {
    if (depth >= MAX_DEPTH) throw new FieldError(`nested deeper than ${MAX_DEPTH} tables or arrays`);
    return depth + 1;
  };
  if (typeof v === "number") {
    if (Number.isInteger(v) && !Number.isSafeInteger(v)) {
      throw new FieldError(`${v} is beyond JSON's safe integers: write it as {"$int64": "${BigInt(v)}"}`);
    }
    return v;
  }
  if (Array.isArray(v)) {
    const next = deeper();
    return v.map((x) => fieldFromJson(x, next));
  }
  if (typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length === 1) {
      const [name, raw] = entries[0]!;
      if (name === TABLE) {
        if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
          throw new FieldError(`${TABLE} takes an object`);
        }
        return tableFromJson(raw, deeper());
      }
      if (name === RAW) return rawFromJson(raw);
      const tag = TAGS_BY_NAME.get(name);
      if (tag) return typedFromJson(tag, name, raw);
      if (name.startsWith("$")) {
        throw new FieldError(
          `unknown typed value '${name}' (known: ${
            [...TAGS_BY_NAME.keys(), RAW].join(", ")
          }; wrap a table in ${TABLE})`,
        );
      }
    }
    return tableFromJson(v, deeper());
  }
  throw new FieldError(`unsupported header value ${JSON.stringify(v)}`);
}

/** `{"$raw": base64}`: a whole table (F) or array (A) as wire bytes, checked for a consistent length. */
function rawFromJson(raw: unknown): RawField {
  const bytes = typeof raw === "string" && BASE64.test(raw) ? Buffer.from(raw, "base64") : undefined;
  const kind = bytes?.[0];
  if (
    !bytes || bytes.length < 5 || (kind !== 0x46 && kind !== 0x41) ||
    bytes.readUInt32BE(1) !== bytes.length - 5
  ) {
    throw new FieldError(`${RAW} takes the base64 of a table or array as AMQP encodes it`);
  }
  return new RawField(new Uint8Array(bytes));
}

/** Standard base64 with whole 4-character groups (Node's decoder would skip anything else). */
export const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function tableFromJson(v: object, depth = 0): FieldTable {
  const out: FieldTable = {};
  for (const [k, x] of Object.entries(v)) {
    try {
      putKey(out, k, fieldFromJson(x, depth));
    } catch (err) {
      // only the innermost key: a path 100 levels long would not fit one line
      if (err instanceof FieldError && err.message.startsWith("'")) throw err;
      throw new FieldError(`'${k}': ${(err as Error).message}`);
    }
  }
  return out;
}
