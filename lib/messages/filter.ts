/**
 * `--filter EXPR`: a predicate over each message in the Common Expression Language (CEL), the
 * safe, side-effect-free language of Kubernetes and Envoy policies, evaluated by @bufbuild/cel
 * (conformance-tested against cel-spec). kmq adds no language of its own: it only binds the
 * message's parts to the variables below and checks what CEL's parser cannot (unknown names, a
 * result that is not a boolean).
 */
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { celEnv, CelScalar, isCelError, mapType, parse, plan } from "@bufbuild/cel";
import { strings } from "@bufbuild/cel/ext";
import { UsageError } from "../term/errors.ts";
import { type FieldValue, RawField, TypedField } from "./fields.ts";
import { timestampOf } from "./timestamp.ts";

/** The longest one evaluation may take (it blocks the event loop, so the heartbeats too). */
const BUDGET_MS = 1_000;

/** A body that is not UTF-8 still has a `body` (with U+FFFD where bytes were invalid). */
const lenientUtf8 = new TextDecoder();

/** The variables an expression may use, each bound to part of the message. */
const VARIABLES = {
  /** The body as UTF-8 text (bytes that are not UTF-8 become U+FFFD). */
  body: CelScalar.STRING,
  /** The body parsed as JSON; an expression using it does not match a body that is not JSON. */
  json: CelScalar.DYN,
  routing_key: CelScalar.STRING,
  exchange: CelScalar.STRING,
  /** content_type, message_id, … (pika's names); only the properties the message has. */
  properties: mapType(CelScalar.STRING, CelScalar.DYN),
  headers: mapType(CelScalar.STRING, CelScalar.DYN),
  redelivered: CelScalar.BOOL,
  /** A dead letter's latest death, x-death's first entry: queue, reason, exchange, routing-keys, count, time. */
  death: mapType(CelScalar.STRING, CelScalar.DYN),
} as const;

type Variable = keyof typeof VARIABLES;
export const FILTER_VARIABLES = Object.keys(VARIABLES) as Variable[];

/** Functions whose result is never a boolean: at the top of a filter they are a mistake. */
const NOT_BOOLEAN = new Set([
  "_+_",
  "_-_",
  "_*_",
  "_/_",
  "_%_",
  "-_",
  "size",
  "string",
  "int",
  "uint",
  "double",
  "bytes",
  "timestamp",
  "duration",
  "type",
  "lowerAscii",
  "upperAscii",
  "replace",
  "substring",
  "trim",
  "charAt",
  "indexOf",
  "lastIndexOf",
  "split",
  "join",
]);

/** The part of the AST kmq looks at (cel.expr.Expr as @bufbuild/cel-spec generates it). */
interface Expr {
  exprKind:
    | { case: "identExpr"; value: { name: string } }
    | { case: "selectExpr"; value: { operand?: Expr; field: string; testOnly: boolean } }
    | { case: "callExpr"; value: { function: string; target?: Expr; args: Expr[] } }
    | { case: "listExpr"; value: { elements: Expr[] } }
    | {
      case: "structExpr";
      value: { entries: { keyKind: { case?: string; value?: unknown }; value?: Expr }[] };
    }
    | {
      case: "comprehensionExpr";
      value: {
        iterVar: string;
        iterVar2: string;
        accuVar: string;
        iterRange?: Expr;
        accuInit?: Expr;
        loopCondition?: Expr;
        loopStep?: Expr;
        result?: Expr;
      };
    }
    | { case: "constExpr"; value: { constantKind: { case?: string } } }
    | { case: undefined; value?: undefined };
}

/** --filter over one run (across reconnects): the expression and where non-matching messages went. */
export interface Sieve {
  filter: MessageFilter;
  /** Keep non-matching messages unacked, so they go back to the queue when kmq stops; else ack them. */
  hold: boolean;
  /** Messages that did not match (evaluation errors included). */
  unmatched: number;
}

export class MessageFilter {
  /** Messages the expression could not be evaluated on (counted as not matching). */
  errors = 0;
  /** The first of those errors, for --verbose. */
  firstError?: string;
  private readonly uses: Set<Variable>;
  private last: Record<string, unknown> = {};
  private readonly evaluate: (bindings: Record<string, unknown>) => unknown;

  /** Throws a {@link UsageError} (exit 2) for a syntax error, an unknown name or a non-boolean. */
  constructor(readonly source: string) {
    let ast: Expr;
    try {
      ast = parse(source).expr as unknown as Expr;
    } catch (err) {
      throw syntaxError(source, err);
    }
    this.uses = new Set();
    collectVariables(ast, new Set(), this.uses);
    checkBoolean(ast, source);
    const env = celEnv({ variables: VARIABLES, funcs: strings });
    // deno-lint-ignore no-explicit-any
    const run = plan(env, ast as any) as (ctx: any) => unknown;
    this.evaluate = run;
  }

  /**
   * Whether the message matches. An error while evaluating (a missing field, a body that is not
   * JSON) is no match; a result that is not a boolean is a usage error (thrown).
   */
  matches(msg: AMQPMessage): boolean {
    let result: unknown;
    const started = performance.now();
    try {
      this.last = this.bindings(msg);
      result = this.evaluate(this.last);
    } catch (err) {
      result = err instanceof Error ? err : new Error(String(err));
    }
    const took = performance.now() - started;
    if (took > BUDGET_MS) {
      // evaluation blocks everything, heartbeats included: a connection would be dropped
      throw new UsageError(
        `--filter took ${(took / 1000).toFixed(1)} s on one message (more than ${
          BUDGET_MS / 1000
        } s, during ` +
          "which kmq cannot answer the broker): that message stays in the queue; make the condition cheaper",
      );
    }
    if (typeof result === "boolean") return result;
    if (isCelError(result) || result instanceof Error) {
      this.errors++;
      const notJson = this.uses.has("json") && !("json" in this.last);
      this.firstError ??= notJson ? "the body is not JSON" : (result as Error).message;
      return false;
    }
    throw new UsageError(
      `--filter '${this.source}' gave ${describe(result)}, not true or false: ` +
        `make it a condition, e.g. ${this.source} == …`,
    );
  }

  private bindings(msg: AMQPMessage): Record<string, unknown> {
    const b: Record<string, unknown> = {};
    const u = this.uses;
    const text = u.has("body") || u.has("json") ? lenientUtf8.decode(msg.body ?? new Uint8Array(0)) : "";
    if (u.has("body")) b.body = text;
    if (u.has("json")) {
      try {
        b.json = JSON.parse(text);
      } catch {
        // left unbound: every use of json is then an evaluation error, so no match
      }
    }
    if (u.has("routing_key")) b.routing_key = msg.routingKey;
    if (u.has("exchange")) b.exchange = msg.exchange;
    if (u.has("redelivered")) b.redelivered = msg.redelivered;
    if (u.has("headers")) b.headers = celTable((msg.properties.headers ?? {}) as Record<string, FieldValue>);
    if (u.has("properties")) b.properties = propertiesOf(msg);
    if (u.has("death")) {
      const deaths = msg.properties.headers?.["x-death"];
      const last = Array.isArray(deaths) ? deaths[0] : undefined;
      const isTable = last !== null && typeof last === "object" && !Array.isArray(last) &&
        !(last instanceof TypedField) && !(last instanceof RawField);
      b.death = isTable ? celTable(last as Record<string, FieldValue>) : new Map();
    }
    return b;
  }
}

/** "--filter syntax error at column 13: …", one line, with the text up to the column. */
function syntaxError(source: string, err: unknown): UsageError {
  const e = err as { rawMessage?: string; message?: string; location?: { start?: { column?: number } } };
  const column = e.location?.start?.column;
  let what = e.rawMessage ?? e.message ?? String(err);
  // the parser lists every token it could take: the first few say enough
  what = what.replace(/expecting (.{60}).*$/, "expecting $1…");
  const at = column === undefined ? "" : ` at column ${column} (after '${source.slice(0, column - 1)}')`;
  return new UsageError(
    `--filter syntax error${at}: ${what}; the language is CEL (docs/reference.md, --filter)`,
  );
}

/** Every free name of the expression must be one of kmq's variables. */
/**
 * Collects the variables an expression uses, refusing unknown names and a comprehension (all,
 * exists, exists_one, map, filter) inside another: its cost grows with the square of the message
 * (`body.split("").all(x, body.split("").all(y, …)))` took 12 s on 8,000 characters).
 */
function collectVariables(e: Expr | undefined, bound: Set<string>, uses: Set<Variable>, depth = 0): void {
  if (!e) return;
  const recurse = (x: Expr | undefined, b = bound, d = depth) => collectVariables(x, b, uses, d);
  const k = e.exprKind;
  switch (k.case) {
    case "identExpr": {
      const name = k.value.name;
      if (bound.has(name)) return;
      if (!(name in VARIABLES)) {
        throw new UsageError(
          `--filter uses an unknown name '${name}': the variables are ${FILTER_VARIABLES.join(", ")}`,
        );
      }
      uses.add(name as Variable);
      return;
    }
    case "selectExpr":
      return recurse(k.value.operand);
    case "callExpr":
      recurse(k.value.target);
      for (const a of k.value.args) recurse(a);
      return;
    case "listExpr":
      for (const a of k.value.elements) recurse(a);
      return;
    case "structExpr":
      for (const entry of k.value.entries) {
        if (entry.keyKind.case === "mapKey") recurse(entry.keyKind.value as Expr);
        recurse(entry.value);
      }
      return;
    case "comprehensionExpr": {
      if (depth > 0) {
        throw new UsageError(
          "--filter nests a comprehension (all, exists, exists_one, map, filter) inside another: its cost " +
            "grows with the square of the message, so kmq refuses it; use one comprehension",
        );
      }
      const c = k.value;
      recurse(c.iterRange);
      recurse(c.accuInit);
      const inner = new Set([...bound, c.iterVar, c.accuVar, ...(c.iterVar2 ? [c.iterVar2] : [])]);
      for (const part of [c.loopCondition, c.loopStep, c.result]) recurse(part, inner, depth + 1);
      return;
    }
  }
}

/** A literal, a list, a map or arithmetic can never be true or false: refused before any message. */
function checkBoolean(e: Expr, source: string): void {
  const k = e.exprKind;
  let what: string | undefined;
  if (k.case === "constExpr" && k.value.constantKind.case !== "boolValue") what = "a constant";
  if (k.case === "listExpr") what = "a list";
  if (k.case === "structExpr") what = "a map";
  if (k.case === "callExpr" && NOT_BOOLEAN.has(k.value.function)) {
    what = `the result of ${k.value.function.replace(/_/g, " ").trim()}`;
  }
  what ??= staticType(e);
  if (what === undefined) return;
  throw new UsageError(
    `--filter '${source}' is ${what}, not a condition: compare it, e.g. json.amount > 100 or ` +
      `headers["tenant"] == "acme"`,
  );
}

/**
 * What a variable (or a property) is when its type is known before any message: body,
 * routing_key and exchange are strings, properties and headers maps, and a property a string or
 * a number. json and a header can hold a boolean (`json.paid`), so only a message can tell.
 */
function staticType(e: Expr): string | undefined {
  const k = e.exprKind;
  const isProperties = (x?: Expr) =>
    x?.exprKind.case === "identExpr" && x.exprKind.value.name === "properties";
  if (k.case === "identExpr") {
    if (["body", "routing_key", "exchange"].includes(k.value.name)) return `${k.value.name}, a string`;
    if (["properties", "headers"].includes(k.value.name)) return `${k.value.name}, a map`;
  }
  if (k.case === "selectExpr" && !k.value.testOnly && isProperties(k.value.operand)) {
    return `a property, a string or a number`;
  }
  if (k.case === "callExpr" && k.value.function === "_[_]" && isProperties(k.value.args[0])) {
    return `a property, a string or a number`;
  }
  return undefined;
}

function describe(v: unknown): string {
  const text = typeof v === "bigint" || typeof v === "number"
    ? `${v}`
    : typeof v === "string"
    ? `'${v.slice(0, 40)}'`
    : "";
  const type = typeof v === "bigint"
    ? "an int"
    : typeof v === "number"
    ? "a double"
    : typeof v === "string"
    ? "a string"
    : v === null
    ? "null"
    : "a value";
  return text ? `${type} (${text})` : type;
}

/** Integer wire types become CEL ints, so `%` and exact comparisons work on them. */
const INTEGER_TAGS = new Set(["b", "B", "s", "u", "i", "l"]);

function celField(v: FieldValue): unknown {
  if (v instanceof TypedField) {
    const x = v.value;
    if (x instanceof Uint8Array) return x;
    if (typeof x === "object") return x.value / 10 ** x.scale; // a decimal
    if (v.tag === "T") return BigInt(x); // seconds since the epoch
    return INTEGER_TAGS.has(v.tag) ? BigInt(x) : Number(x);
  }
  if (v instanceof RawField) return v.bytes; // nested too deep to decode
  if (typeof v === "number") return Number.isInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(celField);
  if (v !== null && typeof v === "object") return celTable(v);
  return v;
}

function celTable(t: Record<string, FieldValue>): Map<string, unknown> {
  return new Map(Object.entries(t).map(([k, v]) => [k, celField(v)]));
}

/** The message's basic properties under pika's names; the timestamp in seconds. */
function propertiesOf(msg: AMQPMessage): Map<string, unknown> {
  const p = msg.properties;
  const all: [string, unknown][] = [
    ["content_type", p.contentType],
    ["content_encoding", p.contentEncoding],
    ["delivery_mode", p.deliveryMode === undefined ? undefined : BigInt(p.deliveryMode)],
    ["priority", p.priority === undefined ? undefined : BigInt(p.priority)],
    ["correlation_id", p.correlationId],
    ["reply_to", p.replyTo],
    ["expiration", p.expiration],
    ["message_id", p.messageId],
    ["timestamp", timestampOf(p)],
    ["type", p.type],
    ["user_id", p.userId],
    ["app_id", p.appId],
  ];
  return new Map(all.filter(([, v]) => v !== undefined && v !== ""));
}
