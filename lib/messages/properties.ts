/** A message's basic properties as kmq publishes them (the wire's names, camel-cased). */
import type { FieldTable } from "./fields.ts";

/** The properties kmq publishes; `timestamp` is unsigned seconds since the epoch, as on the wire. */
export interface MessageProperties {
  contentType?: string;
  contentEncoding?: string;
  headers?: FieldTable;
  deliveryMode?: number;
  priority?: number;
  correlationId?: string;
  replyTo?: string;
  expiration?: string;
  messageId?: string;
  timestamp?: number | bigint;
  type?: string;
  userId?: string;
  appId?: string;
}
