/**
 * A received message's properties as kmq publishes them again (move, redrive, a consumer putting
 * back what it holds): every property and typed header as it came, headers changed as asked.
 */
import type { AMQPProperties } from "@cloudamqp/amqp-client";
import type { FieldTable } from "../messages/fields.ts";
import { timestampOf } from "../messages/timestamp.ts";
import type { MessageProperties } from "./wire.ts";

export function republished(
  p: AMQPProperties,
  set: FieldTable = {},
  drop: readonly string[] = [],
): MessageProperties {
  const headers = { ...(p.headers as FieldTable | undefined), ...set };
  for (const name of drop) delete headers[name];
  const out: MessageProperties = {
    contentType: p.contentType,
    contentEncoding: p.contentEncoding,
    deliveryMode: p.deliveryMode,
    priority: p.priority,
    correlationId: p.correlationId,
    replyTo: p.replyTo,
    expiration: p.expiration,
    messageId: p.messageId,
    timestamp: timestampOf(p),
    type: p.type,
    userId: p.userId,
    appId: p.appId,
  };
  if (Object.keys(headers).length > 0) out.headers = headers;
  for (const key of Object.keys(out) as (keyof MessageProperties)[]) {
    if (out[key] === undefined) delete out[key];
  }
  return out;
}
