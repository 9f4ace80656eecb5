/**
 * `--template FMT`: one message printed as the format string says, kcat's `-f` for AMQP. The body
 * goes out as its bytes (a binary body stays binary when piped); on a terminal, control characters
 * are shown as `\xNN` as `-o line` does. A format is checked whole before anything is read.
 */
import { Buffer } from "node:buffer";
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { UsageError } from "../term/errors.ts";
import { type FieldTable, fieldToJson, type FieldValue, tableToJson, TypedField } from "./fields.ts";
import { propertiesToRecord } from "./formats.ts";
import { timestampOf } from "./timestamp.ts";

/** Each token and what it prints, for help and for the error that names an unknown one. */
export const TEMPLATE_TOKENS: [token: string, meaning: string][] = [
  ["%b", "the body, as its bytes"],
  ["%k", "the routing key"],
  ["%e", "the exchange"],
  ["%h", "all headers as JSON (typed values as -o json writes them)"],
  ["%h{name}", "one header: a string as it is, anything else as JSON; nothing when absent"],
  ["%p{name}", "one property by its -o json name (message_id, content_type, timestamp, …)"],
  ["%t", "the timestamp property as an ISO time (UTC)"],
  ["%o", "the stream offset (x-stream-offset)"],
  ["%r", "redelivered: true or false"],
  ["%s", "the body's size in bytes"],
  ["%d", "the first death: its queue and reason (x-first-death-queue, x-first-death-reason)"],
  ["\\n \\t \\\\ %%", "newline, tab, backslash, percent"],
];

type Part = string | ((msg: AMQPMessage) => string | Uint8Array);

const PROPERTY_NAMES = [
  "content_type",
  "content_encoding",
  "delivery_mode",
  "priority",
  "correlation_id",
  "reply_to",
  "expiration",
  "message_id",
  "timestamp",
  "type",
  "user_id",
  "app_id",
  "headers",
];

const SIMPLE: Record<string, (msg: AMQPMessage) => string | Uint8Array> = {
  b: (msg) => msg.body ?? new Uint8Array(0),
  k: (msg) => msg.routingKey,
  e: (msg) => msg.exchange,
  h: (msg) => JSON.stringify(tableToJson((msg.properties.headers ?? {}) as FieldTable)),
  t: (msg) => isoTime(timestampOf(msg.properties)),
  o: (msg) => headerText(msg, "x-stream-offset"),
  r: (msg) => String(msg.redelivered),
  s: (msg) => String(msg.body?.length ?? 0),
  d: (msg) => {
    const queue = headerText(msg, "x-first-death-queue");
    return queue === "" ? "" : `${queue} ${headerText(msg, "x-first-death-reason")}`;
  },
};

const ESCAPES: Record<string, string> = { n: "\n", t: "\t", "\\": "\\" };

function unknownToken(token: string): UsageError {
  const list = TEMPLATE_TOKENS.map(([t]) => t).join(" ");
  return new UsageError(`--template: '${token}' is not a token; the tokens are ${list}`);
}

/** A compiled `--template`: throws a UsageError naming the first token it does not know. */
export class Template {
  private readonly parts: Part[] = [];

  constructor(format: string) {
    let text = "";
    const flush = () => {
      if (text !== "") this.parts.push(text);
      text = "";
    };
    for (let i = 0; i < format.length; i++) {
      const c = format[i]!;
      if (c === "\\") {
        const next = format[i + 1];
        if (next === undefined || !(next in ESCAPES)) throw unknownToken(`\\${next ?? ""}`);
        text += ESCAPES[next];
        i++;
      } else if (c === "%") {
        const next = format[i + 1];
        if (next === "%") {
          text += "%";
          i++;
          continue;
        }
        flush();
        i = this.token(format, i);
      } else text += c;
    }
    flush();
  }

  /** Parses the token at `at` (a `%`); returns the index of its last character. */
  private token(format: string, at: number): number {
    const letter = format[at + 1] ?? "";
    const braced = format[at + 2] === "{" ? /^\{([^}]*)\}/.exec(format.slice(at + 2)) : null;
    if ((letter === "h" || letter === "p") && braced) {
      const name = braced[1]!;
      if (letter === "p" && !PROPERTY_NAMES.includes(name)) {
        throw new UsageError(
          `--template: %p{${name}} names no property; the properties are ${PROPERTY_NAMES.join(", ")}`,
        );
      }
      this.parts.push(letter === "h" ? (msg) => headerText(msg, name) : (msg) => propertyText(msg, name));
      return at + 2 + braced[0].length - 1;
    }
    const simple = SIMPLE[letter];
    if (!simple) throw unknownToken(`%${letter}`);
    this.parts.push(simple);
    return at + 1;
  }

  /** The bytes for one message. */
  render(msg: AMQPMessage): Uint8Array {
    const chunks = this.parts.map((p) => {
      const v = typeof p === "string" ? p : p(msg);
      return typeof v === "string" ? Buffer.from(v) : v;
    });
    return Buffer.concat(chunks);
  }
}

function headerText(msg: AMQPMessage, name: string): string {
  const headers = msg.properties.headers as FieldTable | undefined;
  if (!headers || !Object.hasOwn(headers, name)) return "";
  const v = headers[name] as FieldValue;
  if (typeof v === "string") return v;
  if (v instanceof TypedField && (typeof v.value === "number" || typeof v.value === "bigint")) {
    return String(v.value);
  }
  return typeof v === "number" || typeof v === "boolean" ? String(v) : JSON.stringify(fieldToJson(v));
}

function propertyText(msg: AMQPMessage, name: string): string {
  if (name === "timestamp") return String(timestampOf(msg.properties) ?? "");
  const record = propertiesToRecord(msg.properties) as Record<string, unknown>;
  const v = record[name];
  return v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v);
}

/** Seconds since the epoch as ISO time; beyond what a Date holds, the seconds themselves. */
function isoTime(seconds: bigint | undefined): string {
  if (seconds === undefined) return "";
  if (seconds > 8_640_000_000_000n) return String(seconds);
  return new Date(Number(seconds) * 1000).toISOString().replace(".000Z", "Z");
}
