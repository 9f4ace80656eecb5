/**
 * `--jsonl` input: one record per line in exactly the schema `kmq consume --format json` writes,
 * so a dump replays with every property, header type and body byte.
 */
import { Buffer } from "node:buffer";
import { BASE64, FieldError, tableFromJson, timestampFromJson } from "./fields.ts";
import type { MessageProperties } from "./properties.ts";

export interface ParsedRecord {
  exchange?: string;
  routingKey?: string;
  properties: MessageProperties;
  body: Uint8Array;
}

export class RecordError extends Error {}

const STRING_PROPS = {
  content_type: "contentType",
  content_encoding: "contentEncoding",
  correlation_id: "correlationId",
  reply_to: "replyTo",
  expiration: "expiration",
  message_id: "messageId",
  type: "type",
  user_id: "userId",
  app_id: "appId",
} as const;

/** What a record may hold: `kmq consume -o json` writes these (a typo must not be ignored). */
const RECORD_KEYS = new Set([
  "exchange",
  "routing_key",
  "redelivered",
  "received_at",
  "properties",
  "body",
  "body_base64",
]);
const PROPERTY_KEYS = new Set([
  ...Object.keys(STRING_PROPS),
  "delivery_mode",
  "priority",
  "timestamp",
  "headers",
]);

function refuseUnknown(keys: string[], known: Set<string>, where: string): void {
  const unknown = keys.find((k) => !known.has(k));
  if (unknown !== undefined) {
    throw new RecordError(
      `unknown key '${unknown}'${where} (known: ${[...known].join(", ")})`,
    );
  }
}

function octet(v: unknown, name: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 255) {
    throw new RecordError(`properties.${name} must be an integer from 0 to 255`);
  }
  return v;
}

export function parseProperties(p: unknown): MessageProperties {
  if (p === undefined) return {};
  if (p === null || typeof p !== "object" || Array.isArray(p)) {
    throw new RecordError("properties must be an object");
  }
  const src = p as Record<string, unknown>;
  refuseUnknown(Object.keys(src), PROPERTY_KEYS, " in properties");
  const out: MessageProperties = {};
  for (const [json, key] of Object.entries(STRING_PROPS)) {
    const v = src[json];
    if (v === undefined) continue;
    if (typeof v !== "string") throw new RecordError(`properties.${json} must be a string`);
    out[key] = v;
  }
  if (out.expiration !== undefined && !/^\d{1,10}$/.test(out.expiration)) {
    throw new RecordError("properties.expiration must be a whole number of milliseconds, as a string");
  }
  if (src.delivery_mode !== undefined) {
    out.deliveryMode = octet(src.delivery_mode, "delivery_mode");
    if (out.deliveryMode !== 1 && out.deliveryMode !== 2) {
      throw new RecordError("properties.delivery_mode must be 1 (transient) or 2 (persistent)");
    }
  }
  if (src.priority !== undefined) out.priority = octet(src.priority, "priority");
  if (src.timestamp !== undefined) {
    try {
      out.timestamp = timestampFromJson(src.timestamp, "properties.timestamp");
    } catch (err) {
      throw new RecordError((err as Error).message);
    }
  }
  if (src.headers !== undefined) {
    if (src.headers === null || typeof src.headers !== "object" || Array.isArray(src.headers)) {
      throw new RecordError("properties.headers must be an object");
    }
    try {
      out.headers = tableFromJson(src.headers);
    } catch (err) {
      if (err instanceof FieldError) throw new RecordError(`properties.headers ${err.message}`);
      throw err;
    }
  }
  return out;
}

/** Parses one line; throws RecordError saying what is wrong with it. */
export function parseRecord(line: string): ParsedRecord {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw new RecordError(`not valid JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new RecordError("a record must be a JSON object");
  }
  const r = v as Record<string, unknown>;
  refuseUnknown(Object.keys(r), RECORD_KEYS, "");
  const hasBody = r.body !== undefined;
  const hasBase64 = r.body_base64 !== undefined;
  if (hasBody === hasBase64) throw new RecordError("a record needs exactly one of 'body' and 'body_base64'");
  let body: Uint8Array;
  if (hasBody) {
    if (typeof r.body !== "string") {
      throw new RecordError("'body' must be a string (use body_base64 for bytes)");
    }
    body = new Uint8Array(Buffer.from(r.body, "utf-8"));
  } else {
    if (typeof r.body_base64 !== "string" || !BASE64.test(r.body_base64)) {
      throw new RecordError("'body_base64' must be base64 text (whole groups of 4 characters)");
    }
    body = new Uint8Array(Buffer.from(r.body_base64, "base64"));
  }
  for (const key of ["exchange", "routing_key"] as const) {
    if (r[key] !== undefined && typeof r[key] !== "string") {
      throw new RecordError(`'${key}' must be a string`);
    }
  }
  return {
    exchange: r.exchange as string | undefined,
    routingKey: r.routing_key as string | undefined,
    properties: parseProperties(r.properties),
    body,
  };
}
