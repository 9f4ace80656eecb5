/**
 * Declaration arguments: queue types and `x-` arguments, exchange arguments, binding arguments.
 * The command line's short forms (`--max-length`, …) and the general `--queue-arg key=value` /
 * `key:=json` forms end up here as one table per entity; checks that RabbitMQ would make later
 * (a quorum queue cannot be exclusive) are made first, as usage errors naming the flag.
 */
import { UsageError } from "../term/errors.ts";
import { putKey } from "../messages/fields.ts";

export const QUEUE_TYPES = ["classic", "quorum", "stream"] as const;
export type QueueType = (typeof QUEUE_TYPES)[number];
export const OVERFLOWS = ["drop-head", "reject-publish", "reject-publish-dlx"] as const;

/** Argument values as amqp-client encodes them (strings, numbers, booleans, arrays, tables). */
export type ArgumentTable = Record<string, unknown>;

/**
 * `key=value` (a string) or `key:=json` (a number, boolean, array or table), as -H takes them;
 * adds to `into`. Throws a UsageError naming the option.
 */
export function parseArgument(option: string, spec: string, into: ArgumentTable = {}): ArgumentTable {
  const typed = /^([^=:]+):=(.*)$/s.exec(spec);
  if (typed) {
    const [, key = "", json = ""] = typed;
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      throw new UsageError(`${option} '${key}': '${json}' is not valid JSON (key:=json)`);
    }
    const bad = inexactNumber(value);
    if (bad !== undefined) {
      throw new UsageError(
        `${option} '${key}': ${bad} cannot be sent exactly: AMQP arguments take integers within ` +
          `±${Number.MAX_SAFE_INTEGER} here and finite numbers`,
      );
    }
    putKey<unknown>(into, key, value);
    return into;
  }
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new UsageError(`${option} '${spec}' is not key=value (or key:=json for a typed value)`);
  putKey<unknown>(into, spec.slice(0, eq), spec.slice(eq + 1));
  return into;
}

/** The first number in a JSON value that would not arrive as written (rounded or infinite). */
function inexactNumber(v: unknown, depth = 0): string | undefined {
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return "a number beyond 64-bit floating point";
    return Number.isInteger(v) && !Number.isSafeInteger(v) ? String(BigInt(v)) : undefined;
  }
  if (v === null || typeof v !== "object" || depth > 100) return undefined;
  for (const x of Object.values(v)) {
    const bad = inexactNumber(x, depth + 1);
    if (bad !== undefined) return bad;
  }
  return undefined;
}

/** The queue options as the command line gives them. */
export interface QueueArgumentOptions {
  queueType?: QueueType;
  queueArg?: ArgumentTable;
  maxLength?: number;
  maxLengthBytes?: number;
  messageTtl?: number;
  deadLetterExchange?: string;
  deadLetterRoutingKey?: string;
  overflow?: string;
  singleActiveConsumer?: boolean;
  maxAge?: string;
  deliveryLimit?: number;
}

/** Each short form: its flag and the argument it sets. */
const SHORT_FORMS: [keyof QueueArgumentOptions, string, string][] = [
  ["maxLength", "--max-length", "x-max-length"],
  ["maxLengthBytes", "--max-length-bytes", "x-max-length-bytes"],
  ["messageTtl", "--message-ttl", "x-message-ttl"],
  ["deadLetterExchange", "--dead-letter-exchange", "x-dead-letter-exchange"],
  ["deadLetterRoutingKey", "--dead-letter-routing-key", "x-dead-letter-routing-key"],
  ["overflow", "--overflow", "x-overflow"],
  ["singleActiveConsumer", "--single-active-consumer", "x-single-active-consumer"],
  ["maxAge", "--max-age", "x-max-age"],
  ["deliveryLimit", "--delivery-limit", "x-delivery-limit"],
];

/** The flag that sets an argument, for hints ("declare it with --queue-type quorum"). */
export function flagFor(argument: string, value: string, typed = false): string {
  if (argument === "x-queue-type") return `--queue-type ${value}`;
  const short = SHORT_FORMS.find(([, , arg]) => arg === argument);
  if (short) return short[0] === "singleActiveConsumer" ? short[1] : `${short[1]} ${value}`;
  if (argument === "durable") return value === "true" ? "no --no-durable" : "--no-durable";
  if (argument === "auto_delete") return value === "true" ? "--auto-delete" : "no --auto-delete";
  if (argument === "exclusive") return value === "true" ? "--exclusive" : "no --exclusive";
  return `--queue-arg ${argument}${typed ? ":=" : "="}${value}`;
}

/** A queue's arguments from the command line: `x-queue-type` first, the short forms, then --queue-arg. */
export function queueArgumentsFrom(o: QueueArgumentOptions): ArgumentTable {
  const args: ArgumentTable = {};
  if (o.queueType !== undefined) args["x-queue-type"] = o.queueType;
  for (const [key, , argument] of SHORT_FORMS) {
    if (o[key] !== undefined && o[key] !== false) args[argument] = o[key];
  }
  Object.assign(args, o.queueArg ?? {});
  return args;
}

/** What a queue type rules out, checked before the broker refuses it mid-way. */
export function checkQueueType(
  args: ArgumentTable,
  flags: { exclusive: boolean; autoDelete: boolean; durable: boolean; serverNamed: boolean },
): void {
  const type = args["x-queue-type"] ?? "classic";
  if (typeof type !== "string" || !(QUEUE_TYPES as readonly string[]).includes(type)) {
    throw new UsageError(`unknown queue type '${String(type)}': use ${QUEUE_TYPES.join(", ")}`);
  }
  if (type !== "classic") {
    const conflict = flags.exclusive
      ? "--exclusive"
      : flags.autoDelete
      ? "--auto-delete"
      : !flags.durable
      ? "--no-durable"
      : flags.serverNamed
      ? "-q '' (a server-named queue)"
      : undefined;
    if (conflict) {
      throw new UsageError(`a ${type} queue is always durable, shared and kept: drop ${conflict}`);
    }
  }
  if (args["x-max-age"] !== undefined && type !== "stream") {
    throw new UsageError("--max-age is for streams: add --queue-type stream");
  }
  if (typeof args["x-max-age"] === "string" && !/^\d+(Y|M|D|h|m|s)$/.test(args["x-max-age"])) {
    throw new UsageError(`--max-age '${args["x-max-age"]}' is not an age like 7D, 12h, 30m or 1Y`);
  }
  if (args["x-delivery-limit"] !== undefined && type !== "quorum") {
    throw new UsageError("--delivery-limit is for quorum queues: add --queue-type quorum");
  }
}

/** `--bind-arg` and `--match all|any` (x-match, for headers exchanges). */
export function bindingArguments(
  bindArg: ArgumentTable | undefined,
  match: string | undefined,
): ArgumentTable {
  const args: ArgumentTable = { ...bindArg };
  if (match !== undefined) args["x-match"] = match;
  return args;
}

/**
 * `--offset` for a stream: first, last, next, an offset (a number), a time (ISO 8601, sent as an
 * AMQP timestamp) or an interval such as 30m, 1h, 7D (RabbitMQ's own syntax).
 */
export function streamOffset(value: string): string | number | bigint | Date {
  if (["first", "last", "next"].includes(value)) return value;
  if (/^\d+$/.test(value)) {
    const n = BigInt(value);
    // x-stream-offset is a signed 64-bit integer: a larger one would wrap to the start
    if (n >= 2n ** 63n) {
      throw new UsageError(`--offset ${value} is beyond a stream's last possible offset (2^63 - 1)`);
    }
    return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  }
  if (/^\d+(Y|M|D|h|m|s)$/.test(value)) {
    if (/^0+\D$/.test(value)) {
      throw new UsageError(
        `--offset ${value} is an empty interval: give at least 1 (e.g. 1${value.at(-1)}), or next`,
      );
    }
    return value;
  }
  if (/^\d{4}-\d\d-\d\d/.test(value) && !Number.isNaN(Date.parse(value))) return new Date(value);
  throw new UsageError(
    `--offset '${value}' is not first, last, next, a number, an ISO 8601 time or an interval like 1h`,
  );
}
