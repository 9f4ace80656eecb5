/**
 * A dead letter's record of its deaths: RabbitMQ's `x-death` header, one entry per (queue, reason),
 * the most recent first, each with the exchange and routing keys the message was published with,
 * how many times it died that way and when it first did.
 */
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { type FieldTable, type FieldValue, TypedField } from "../messages/fields.ts";

export interface Death {
  /** The queue it died in (the most recent death). */
  queue: string;
  /** rejected, expired, maxlen or delivery_limit. */
  reason: string;
  exchange: string;
  routingKeys: string[];
  /** Times it died in that queue for that reason. */
  count: number;
  /** When it first died there, seconds since the epoch. */
  time?: bigint;
}

const plain = (v: FieldValue | undefined): unknown => v instanceof TypedField ? v.value : v;

/** The most recent death, or undefined for a message that never died (published into the DLQ). */
export function deathOf(msg: AMQPMessage): Death | undefined {
  const deaths = msg.properties.headers?.["x-death"] as FieldValue | undefined;
  if (!Array.isArray(deaths) || deaths.length === 0) return undefined;
  const last = deaths[0];
  if (last === null || typeof last !== "object" || Array.isArray(last) || last instanceof TypedField) {
    return undefined;
  }
  const d = new Map(Object.entries(last as FieldTable));
  const queue = plain(d.get("queue"));
  if (typeof queue !== "string") return undefined;
  const keys = plain(d.get("routing-keys"));
  const time = plain(d.get("time"));
  return {
    queue,
    reason: String(plain(d.get("reason")) ?? "unknown"),
    exchange: String(plain(d.get("exchange")) ?? ""),
    routingKeys: Array.isArray(keys) ? keys.map((k) => String(plain(k as FieldValue))) : [],
    count: Number(plain(d.get("count")) ?? 1),
    time: typeof time === "bigint" ? time : typeof time === "number" ? BigInt(time) : undefined,
  };
}

/** A header kmq sets, read back as a number or string (absent: undefined). */
export function headerOf(msg: AMQPMessage, name: string): unknown {
  const h = msg.properties.headers;
  if (!h || !Object.hasOwn(h, name)) return undefined;
  return plain(h[name] as FieldValue);
}
