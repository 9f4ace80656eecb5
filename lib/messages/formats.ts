import { Buffer } from "node:buffer";
import type { AMQPMessage, AMQPProperties } from "@cloudamqp/amqp-client";
import { exactJson, type FieldTable, tableToJson } from "./fields.ts";
import { timestampOf } from "./timestamp.ts";

export const FORMATS = ["line", "raw", "json"] as const;
export type Format = (typeof FORMATS)[number];

/** A message's properties as `--format json` writes them: AMQP's names, unset ones left out. */
export interface PropertiesRecord {
  content_type?: string;
  content_encoding?: string;
  delivery_mode?: number;
  priority?: number;
  correlation_id?: string;
  reply_to?: string;
  expiration?: string;
  message_id?: string;
  /** Seconds since the Unix epoch, as AMQP carries it. */
  /** Whole seconds; digits in a string beyond 2^53 (JSON readers would round a number). */
  timestamp?: number | string;
  type?: string;
  user_id?: string;
  app_id?: string;
  headers?: Record<string, unknown>;
}

/** One line of `--format json`. Exactly one of `body` and `body_base64` is present. */
export interface MessageRecord {
  exchange: string;
  routing_key: string;
  redelivered: boolean;
  /** When kmq took the delivery (ISO 8601, UTC); ignored on replay. */
  received_at: string;
  properties: PropertiesRecord;
  body?: string;
  body_base64?: string;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function propertiesToRecord(p: AMQPProperties): PropertiesRecord {
  const r: PropertiesRecord = {};
  if (p.contentType !== undefined) r.content_type = p.contentType;
  if (p.contentEncoding !== undefined) r.content_encoding = p.contentEncoding;
  if (p.deliveryMode !== undefined) r.delivery_mode = p.deliveryMode;
  if (p.priority !== undefined) r.priority = p.priority;
  if (p.correlationId !== undefined) r.correlation_id = p.correlationId;
  if (p.replyTo !== undefined) r.reply_to = p.replyTo;
  if (p.expiration !== undefined) r.expiration = p.expiration;
  if (p.messageId !== undefined) r.message_id = p.messageId;
  const timestamp = timestampOf(p);
  if (timestamp !== undefined) r.timestamp = exactJson(timestamp);
  if (p.type !== undefined) r.type = p.type;
  if (p.userId !== undefined) r.user_id = p.userId;
  if (p.appId !== undefined) r.app_id = p.appId;
  // headers were decoded into kmq's typed form (field-decoding.ts), which JSON keeps exactly
  if (p.headers !== undefined) r.headers = tableToJson(p.headers as FieldTable);
  return r;
}

export function messageToRecord(msg: AMQPMessage): MessageRecord {
  const record: MessageRecord = {
    exchange: msg.exchange,
    routing_key: msg.routingKey,
    redelivered: msg.redelivered,
    received_at: new Date().toISOString(),
    properties: propertiesToRecord(msg.properties),
  };
  const body = msg.body ?? new Uint8Array(0);
  try {
    record.body = utf8.decode(body);
  } catch {
    record.body_base64 = Buffer.from(body).toString("base64");
  }
  return record;
}

const NEWLINE = new Uint8Array([10]);

/** The bytes `kmq consume` writes for one message in the given format. */
export function formatMessage(msg: AMQPMessage, format: Format): Uint8Array {
  const body = msg.body ?? new Uint8Array(0);
  switch (format) {
    case "raw":
      return body;
    case "line":
      return Buffer.concat([body, NEWLINE]);
    case "json":
      return Buffer.from(JSON.stringify(messageToRecord(msg)) + "\n");
  }
}

const unicodeEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** Control characters a terminal would act on: all but tab and newline, DEL, and the C1 range. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/**
 * What goes to a terminal instead of {@link formatMessage}'s bytes: a body cannot clear the
 * screen, recolour it or retitle the window. `line` shows each control character as `\xNN`;
 * `json` escapes the ones JSON leaves raw (DEL and C1) as `\u00NN`, still valid JSON. `raw` and
 * anything not a terminal stay byte-exact.
 */
export function forTerminal(msg: AMQPMessage, format: Format): Uint8Array {
  if (format === "raw") return formatMessage(msg, format);
  const text = new TextDecoder().decode(formatMessage(msg, format));
  const escape = format === "line"
    ? (c: string) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`
    : unicodeEscape;
  return new TextEncoder().encode(text.replace(CONTROLS, escape));
}

/** Something that prints a message its own way (a `--template`). */
export interface MessagePrinter {
  render(msg: AMQPMessage): Uint8Array;
}

/**
 * The bytes written for one message: a `--template`'s, or the format's; on a terminal with
 * control characters shown as `\xNN` (not for `raw`), piped byte-exact.
 */
export function printed(
  msg: AMQPMessage,
  format: Format,
  template: MessagePrinter | undefined,
  tty: boolean,
): Uint8Array {
  if (!template) return tty ? forTerminal(msg, format) : formatMessage(msg, format);
  const bytes = template.render(msg);
  if (!tty) return bytes;
  const text = new TextDecoder().decode(bytes);
  return new TextEncoder().encode(
    text.replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`),
  );
}

/** DEL and C1, which JSON.stringify leaves raw. */
const RAW_IN_JSON = /[\x7f-\x9f]/g;

/** JSON text with DEL and C1 as `\u00NN`: the same value, and a name in it cannot drive a terminal. */
export function escapeJsonControls(json: string): string {
  return json.replace(RAW_IN_JSON, unicodeEscape);
}
