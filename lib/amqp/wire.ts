/**
 * Encodes basic.publish frames kmq sends itself, instead of through the client's basicPublish:
 * it writes header values with their exact wire type (the client writes every non-integer as a
 * 32-bit float, integers from 2^31 to 2^32 as a wrapped 32-bit value, and cannot write a
 * decimal), writes a priority of 0 (the client drops falsy properties), sizes each buffer to its
 * message (the client holds a frameMax-sized buffer per unconfirmed message), and lets many
 * messages go out in one socket write.
 */
import { Buffer } from "node:buffer";
import { type Decimal, type FieldTable, type FieldValue, RawField, TypedField } from "../messages/fields.ts";
import type { MessageProperties } from "../messages/properties.ts";

export type { MessageProperties };

/** The properties and headers do not fit in one frame of the negotiated size. */
export class FrameSizeError extends Error {}

/** A growable big-endian byte writer. */
export class ByteWriter {
  private buf: Buffer;
  pos = 0;

  constructor(size = 4096) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): void {
    this.room(1);
    this.buf.writeUInt8(v, this.pos++);
  }
  i8(v: number): void {
    this.room(1);
    this.buf.writeInt8(v, this.pos++);
  }
  u16(v: number): void {
    this.room(2);
    this.pos = this.buf.writeUInt16BE(v, this.pos);
  }
  i16(v: number): void {
    this.room(2);
    this.pos = this.buf.writeInt16BE(v, this.pos);
  }
  u32(v: number): void {
    this.room(4);
    this.pos = this.buf.writeUInt32BE(v, this.pos);
  }
  i32(v: number): void {
    this.room(4);
    this.pos = this.buf.writeInt32BE(v, this.pos);
  }
  i64(v: bigint): void {
    this.room(8);
    this.pos = this.buf.writeBigInt64BE(v, this.pos);
  }
  u64(v: bigint): void {
    this.room(8);
    this.pos = this.buf.writeBigUInt64BE(v, this.pos);
  }
  f32(v: number): void {
    this.room(4);
    this.pos = this.buf.writeFloatBE(v, this.pos);
  }
  f64(v: number): void {
    this.room(8);
    this.pos = this.buf.writeDoubleBE(v, this.pos);
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  shortString(s: string): void {
    const len = Buffer.byteLength(s);
    if (len > 255) throw new RangeError(`'${s.slice(0, 40)}…' is longer than AMQP's 255-byte short strings`);
    this.u8(len);
    this.room(len);
    this.pos += this.buf.write(s, this.pos);
  }
  longString(s: string): void {
    const len = Buffer.byteLength(s);
    this.u32(len);
    this.room(len);
    this.pos += this.buf.write(s, this.pos);
  }
  /** Reserves a 32-bit length and returns a function that fills it in with the bytes since. */
  lengthPrefix(): () => void {
    const at = this.pos;
    this.u32(0);
    return () => this.buf.writeUInt32BE(this.pos - at - 4, at);
  }
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

const tag = (w: ByteWriter, t: string) => w.u8(t.charCodeAt(0));

export function writeField(w: ByteWriter, v: FieldValue | undefined | bigint | Date | Uint8Array): void {
  if (v === null || v === undefined) return tag(w, "V");
  if (typeof v === "string") return tag(w, "S"), w.longString(v);
  if (typeof v === "boolean") return tag(w, "t"), w.u8(v ? 1 : 0);
  if (typeof v === "bigint") return tag(w, "l"), w.i64(v);
  if (typeof v === "number") {
    if (Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31) return tag(w, "I"), w.i32(v);
    if (Number.isSafeInteger(v)) return tag(w, "l"), w.i64(BigInt(v));
    return tag(w, "d"), w.f64(v);
  }
  if (v instanceof TypedField) return writeTyped(w, v);
  if (v instanceof RawField) return w.bytes(v.bytes);
  if (v instanceof Uint8Array) return tag(w, "x"), w.u32(v.length), w.bytes(v);
  if (v instanceof Date) return tag(w, "T"), w.u64(BigInt(Math.floor(v.getTime() / 1000)));
  if (Array.isArray(v)) {
    tag(w, "A");
    const done = w.lengthPrefix();
    for (const x of v) writeField(w, x);
    return done();
  }
  tag(w, "F");
  writeTable(w, v);
}

function writeTyped(w: ByteWriter, f: TypedField): void {
  tag(w, f.tag);
  const n = f.value as number;
  switch (f.tag) {
    case "b":
      return w.i8(n);
    case "B":
      return w.u8(n);
    case "s":
      return w.i16(n);
    case "u":
      return w.u16(n);
    case "i":
      return w.u32(n);
    case "l":
      return w.i64(BigInt(f.value as bigint | number));
    case "f":
      return w.f32(n);
    case "d":
      return w.f64(n);
    case "T":
      return w.u64(BigInt(f.value as bigint | number));
    case "D": {
      const d = f.value as Decimal;
      w.u8(d.scale);
      return w.i32(d.value);
    }
    case "x": {
      const b = f.value as Uint8Array;
      w.u32(b.length);
      return w.bytes(b);
    }
  }
}

export function writeTable(w: ByteWriter, table: FieldTable): void {
  const done = w.lengthPrefix();
  for (const [k, v] of Object.entries(table)) {
    if (v === undefined) continue;
    w.shortString(k);
    writeField(w, v);
  }
  done();
}

/** Content-header property list; a property is written when it is set, even to 0 or "". */
export function writeProperties(w: ByteWriter, p: MessageProperties): void {
  const has = [
    p.contentType,
    p.contentEncoding,
    p.headers,
    p.deliveryMode,
    p.priority,
    p.correlationId,
    p.replyTo,
    p.expiration,
    p.messageId,
    p.timestamp,
    p.type,
    p.userId,
    p.appId,
  ].map((v) => v !== undefined);
  let flags = 0;
  has.forEach((set, i) => {
    if (set) flags |= 1 << (15 - i);
  });
  w.u16(flags);
  if (p.contentType !== undefined) w.shortString(p.contentType);
  if (p.contentEncoding !== undefined) w.shortString(p.contentEncoding);
  if (p.headers !== undefined) writeTable(w, p.headers);
  if (p.deliveryMode !== undefined) w.u8(p.deliveryMode);
  if (p.priority !== undefined) w.u8(p.priority);
  if (p.correlationId !== undefined) w.shortString(p.correlationId);
  if (p.replyTo !== undefined) w.shortString(p.replyTo);
  if (p.expiration !== undefined) w.shortString(p.expiration);
  if (p.messageId !== undefined) w.shortString(p.messageId);
  if (p.timestamp !== undefined) w.u64(BigInt(p.timestamp));
  if (p.type !== undefined) w.shortString(p.type);
  if (p.userId !== undefined) w.shortString(p.userId);
  if (p.appId !== undefined) w.shortString(p.appId);
}

const FRAME_END = 0xce;
const BASIC = 60;
const PUBLISH = 40;

/**
 * The method, content-header and body frames of one basic.publish, appended to `w`. The property
 * block can be encoded once (`encodedProperties`) and reused for every message that shares it.
 */
export function writePublish(
  w: ByteWriter,
  channel: number,
  frameMax: number,
  exchange: string,
  routingKey: string,
  mandatory: boolean,
  encodedProperties: Uint8Array,
  body: Uint8Array,
): void {
  // method frame
  w.u8(1);
  w.u16(channel);
  const method = w.lengthPrefix();
  w.u16(BASIC);
  w.u16(PUBLISH);
  w.u16(0);
  w.shortString(exchange);
  w.shortString(routingKey);
  w.u8(mandatory ? 1 : 0);
  method();
  w.u8(FRAME_END);
  // content header frame
  if (12 + encodedProperties.length > frameMax - 8) {
    throw new FrameSizeError(
      `the message's properties and headers take ${encodedProperties.length} bytes, more than fit in ` +
        `one ${frameMax}-byte frame: send fewer or smaller headers`,
    );
  }
  w.u8(2);
  w.u16(channel);
  w.u32(12 + encodedProperties.length); // class, weight, body size, properties
  w.u16(BASIC);
  w.u16(0);
  w.i64(BigInt(body.length));
  w.bytes(encodedProperties);
  w.u8(FRAME_END);
  // body frames
  const max = frameMax - 8;
  for (let pos = 0; pos < body.length; pos += max) {
    const part = body.subarray(pos, Math.min(pos + max, body.length));
    w.u8(3);
    w.u16(channel);
    w.u32(part.length);
    w.bytes(part);
    w.u8(FRAME_END);
  }
}

export function encodeProperties(p: MessageProperties): Uint8Array {
  const w = new ByteWriter(256);
  writeProperties(w, p);
  return Uint8Array.from(w.view());
}
