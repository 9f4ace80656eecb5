/**
 * How RabbitMQ's exchange types decide whether one binding takes a message, as its code does it
 * (rabbit_exchange_type_topic, rabbit_exchange_type_headers), each answer with the reason why.
 */
import { type FieldValue, RawField, TypedField } from "../messages/fields.ts";
import type { Args } from "./definitions.ts";

export interface Verdict {
  matched: boolean;
  why: string;
}

/** Words of a topic key or pattern: split at dots; "" has none, "a." has two ("a" and ""). */
function words(key: string): string[] {
  return key === "" ? [] : key.split(".");
}

/** A topic pattern against a key: `*` is exactly one word (empty ones too), `#` zero or more. */
export function topicMatches(pattern: string, key: string): boolean {
  const p = words(pattern);
  const k = words(key);
  // memo[i][j]: pattern from word i matches key from word j
  const memo = new Map<number, boolean>();
  const match = (i: number, j: number): boolean => {
    const id = i * (k.length + 1) + j;
    const known = memo.get(id);
    if (known !== undefined) return known;
    let r: boolean;
    if (i === p.length) r = j === k.length;
    else if (p[i] === "#") r = match(i + 1, j) || (j < k.length && match(i, j + 1));
    else r = j < k.length && (p[i] === "*" || p[i] === k[j]) && match(i + 1, j + 1);
    memo.set(id, r);
    return r;
  };
  return match(0, 0);
}

/** RabbitMQ's type classes: values of different classes never match ("1" is not 1). */
function typeClass(v: unknown): string {
  if (v === null || v === undefined) return "void";
  if (typeof v === "string") return "longstr";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "bigint") return "int";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (v instanceof TypedField) {
    if ("bBsuIil".includes(v.tag)) return "int";
    if (v.tag === "f" || v.tag === "d") return "float";
    return { D: "decimal", T: "timestamp", x: "binary" }[v.tag as string] ?? v.tag;
  }
  if (v instanceof RawField) return "raw";
  return Array.isArray(v) ? "array" : "table";
}

/** A typed value's value (the wire type is only its class here). */
function plain(v: unknown): unknown {
  return v instanceof TypedField ? v.value : v;
}

function sameValue(a: unknown, b: unknown): boolean {
  const [x, y] = [plain(a), plain(b)];
  if ((typeof x === "number" || typeof x === "bigint") && (typeof y === "number" || typeof y === "bigint")) {
    return typeof x === "number" && typeof y === "number"
      ? x === y
      : BigInt(x as number) === BigInt(y as number);
  }
  return JSON.stringify(x, (_k, v) => typeof v === "bigint" ? v.toString() : v) ===
    JSON.stringify(y, (_k, v) => typeof v === "bigint" ? v.toString() : v);
}

const show = (v: unknown): string =>
  typeof v === "string"
    ? `"${v}"`
    : JSON.stringify(plain(v), (_k, x) => typeof x === "bigint" ? `${x}` : x) ?? "null";

/**
 * A headers binding against a message's headers. `x-match` all (the default) or any; the `-with-x`
 * modes count the binding's `x-` arguments too, which the plain modes skip. A binding argument
 * without a value (void) asks only that the header be there.
 */
export function headersMatch(binding: Args, headers: Map<string, FieldValue>): Verdict {
  const mode = String(binding.get("x-match") ?? "all");
  const withX = mode.endsWith("-with-x");
  const all = mode.startsWith("all");
  const tests = [...binding].filter(([k]) => k !== "x-match" && (withX || !k.startsWith("x-")));
  const failed: string[] = [];
  const passed: string[] = [];
  for (const [key, want] of tests) {
    const has = headers.has(key);
    const got = headers.get(key);
    const ok = has &&
      (typeClass(want) === "void" || (typeClass(want) === typeClass(got) && sameValue(want, got)));
    const what = !has
      ? `${key} missing`
      : typeClass(want) === "void"
      ? `${key} present`
      : ok
      ? `${key} = ${show(want)}`
      : `${key} is ${show(got)}, not ${show(want)}`;
    (ok ? passed : failed).push(what);
  }
  // RabbitMQ: "all" holds when nothing failed (so a binding with no tests takes everything);
  // "any" needs one that held
  const matched = all ? failed.length === 0 : passed.length > 0;
  const reasons = matched ? (all ? passed : passed.slice(0, 1)) : (all ? failed.slice(0, 1) : failed);
  const detail = reasons.length > 0 ? reasons.join(", ") : "no header to test";
  return { matched, why: `x-match ${mode}: ${detail}` };
}
