/**
 * The places where @cloudamqp/amqp-client 4.1.1 reads the wire wrongly for kmq, mended once, at
 * start-up, by replacing methods on its prototypes. Each has its upstream patch text in
 * docs/development.md ("Upstream patches"); when a release carries them, this file goes.
 *
 * - Bulk nacks: RabbitMQ sends basic.nack with `multiple` and `requeue` both set (flags byte 3);
 *   the client reads `multiple` only when the byte equals 1, so a bulk nack settled its last tag
 *   only and the rest waited for ever.
 * - Timestamps: the client reads the timestamp property as a signed 64-bit number of seconds
 *   and multiplies it into a Date, so 2^64-1 became -1 and anything past the Date range (a
 *   timestamp written in microseconds) an Invalid Date. AMQP's timestamp is unsigned 64-bit.
 * - Tables: the client builds a header table as a plain object, where a key `__proto__` sets the
 *   prototype instead of a key (the header vanished). kmq's tables have no prototype.
 * - Argument values (queue, exchange, binding and consumer arguments): the client writes integers
 *   from 2^31 to 2^32 as a wrapped 32-bit value (`--max-length-bytes 3221225472` became negative,
 *   `--offset 2147483648` read a stream from its start) and every fraction as a 32-bit float.
 *   They are written as kmq writes headers (`writeField` in wire.ts): the width each value needs.
 */
import { AMQPClient, type AMQPProperties } from "@cloudamqp/amqp-client";
import { WireTimestamp } from "../messages/timestamp.ts";
import { AMQPView } from "@cloudamqp/amqp-client/amqp-view";
import { installTypedFieldDecoding } from "./field-decoding.ts";
import type { FieldValue } from "../messages/fields.ts";
import { ByteWriter, writeField } from "./wire.ts";

const METHOD_FRAME = 1;
const CONNECTION = 10;
const CONNECTION_START = 10;
const BASIC = 60;
const BASIC_NACK = 120;
/** type (1) + channel (2) + size (4) + class (2) + method (2) + delivery tag (8) */
const NACK_FLAGS_AT = 19;

/** Where the timestamp sits in a property list that has one (lengths read from the bytes). */
function timestampAt(view: AMQPView, at: number): number {
  const flags = view.getUint16(at);
  let i = at + 2;
  // content type … message id: short strings, but the headers table and two octets
  for (let bit = 15; bit > 6; bit--) {
    if ((flags & (1 << bit)) === 0) continue;
    if (bit === 13) i += 4 + view.getUint32(i);
    else if (bit === 12 || bit === 11) i += 1;
    else i += 1 + view.getUint8(i);
  }
  return i;
}

/** What each broker said of itself in connection.start (the client drops it). */
const serverProperties = new WeakMap<AMQPClient, Record<string, unknown>>();

/**
 * Which broker and vhost a connection reached, as the broker names itself: its cluster name (the
 * first node's name unless an operator set one) and the vhost. Two URLs that differ in spelling
 * (localhost and 127.0.0.1, with or without the trailing /) give the same identity.
 */
export function brokerIdentity(client: AMQPClient): string {
  const p = serverProperties.get(client);
  return `${String(p?.cluster_name ?? "?")}\u0000${client.vhost}`;
}

/** The broker's version ("3.10.8"), when it said. */
export function brokerVersion(client: AMQPClient): string | undefined {
  const v = serverProperties.get(client)?.version;
  return typeof v === "string" ? v : undefined;
}

interface TableReader {
  getTable(at: number): [Record<string, unknown>, number];
}

let installed = false;

/** Idempotent; call before the first connection. */
export function installClientFixes(): void {
  if (installed) return;
  installed = true;
  installTypedFieldDecoding();
  const proto = AMQPClient.prototype as unknown as { parseFrames(view: AMQPView): void };
  const parseFrames = proto.parseFrames;
  proto.parseFrames = function (this: AMQPClient, view: AMQPView): void {
    // the client hands one whole frame at a time to parseFrames
    if (
      view.getUint8(0) === METHOD_FRAME && view.getUint16(7) === CONNECTION &&
      view.getUint16(9) === CONNECTION_START
    ) {
      serverProperties.set(this, (view as unknown as TableReader).getTable(13)[0]); // after the version octets
    } else if (
      view.byteLength > NACK_FLAGS_AT && view.getUint8(0) === METHOD_FRAME && view.getUint16(7) === BASIC &&
      view.getUint16(9) === BASIC_NACK
    ) {
      // a publisher nack's requeue bit means nothing: keep `multiple` alone, as the client expects
      view.setUint8(NACK_FLAGS_AT, view.getUint8(NACK_FLAGS_AT) & 1);
    }
    parseFrames.call(this, view);
  };
  const view = AMQPView.prototype as unknown as {
    setField(at: number, field: unknown): number;
    getProperties(at: number, le?: boolean): [AMQPProperties, number];
    getTable(at: number, le?: boolean): [Record<string, unknown>, number];
    getField(at: number, le?: boolean): [unknown, number];
  };
  const getProperties = view.getProperties;
  view.getProperties = function (this: AMQPView, at: number, le?: boolean): [AMQPProperties, number] {
    const [props, len] = getProperties.call(this, at, le);
    if (props.timestamp !== undefined) {
      props.timestamp = new WireTimestamp(this.getBigUint64(timestampAt(this, at)));
    }
    return [props, len];
  };
  view.setField = function (this: AMQPView, at: number, field: unknown): number {
    const w = new ByteWriter(64);
    writeField(w, field as FieldValue);
    const bytes = w.view();
    new Uint8Array(this.buffer, this.byteOffset + at, bytes.length).set(bytes);
    return bytes.length;
  };
  view.getTable = function (this: AMQPView, at: number): [Record<string, unknown>, number] {
    const table: Record<string, unknown> = Object.create(null);
    const len = this.getUint32(at);
    for (let i = at + 4; i < at + 4 + len;) {
      const [k, kLen] = this.getShortString(i);
      i += kLen;
      const [v, vLen] = view.getField.call(this, i);
      i += vLen;
      table[k] = v;
    }
    return [table, len + 4];
  };
}
