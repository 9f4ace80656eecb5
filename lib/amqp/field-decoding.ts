/**
 * Makes @cloudamqp/amqp-client decode header values into kmq's typed form (see fields.ts)
 * instead of plain numbers, which lose the wire type (and 64-bit precision, and a decimal's
 * value, which 4.1.1 computes from an unsigned digit field). The client parses content headers
 * inside its frame reader, so the field decoder of its AMQPView is replaced once, at start-up.
 * The same change as a patch upstream would be a "typed fields" option on the client.
 */
import { AMQPView } from "@cloudamqp/amqp-client/amqp-view";
import { type FieldValue, MAX_DEPTH, RawField, TypedField } from "../messages/fields.ts";

let installed = false;
/** How many tables and arrays the field being decoded sits in (the decoder recurses through them). */
let depth = 0;

/** A table or array: decoded, or past {@link MAX_DEPTH} kept as its wire bytes (no recursion). */
function nested(view: AMQPView, at: number, kind: "F" | "A"): [FieldValue, number] {
  const len = view.getUint32(at) + 4;
  if (depth >= MAX_DEPTH) {
    const start = view.byteOffset + at - 1; // the type tag too
    return [new RawField(new Uint8Array(view.buffer.slice(start, start + 1 + len))), len];
  }
  depth++;
  try {
    const [v] = kind === "F" ? view.getTable(at) : view.getArray(at);
    return [v as FieldValue, len];
  } finally {
    depth--;
  }
}

function getField(this: AMQPView, byteOffset: number): [FieldValue, number] {
  let i = byteOffset;
  const type = String.fromCharCode(this.getUint8(i));
  i += 1;
  let v: FieldValue;
  switch (type) {
    case "t":
      v = this.getUint8(i) !== 0;
      i += 1;
      break;
    case "b":
      v = new TypedField("b", this.getInt8(i));
      i += 1;
      break;
    case "B":
      v = new TypedField("B", this.getUint8(i));
      i += 1;
      break;
    case "s":
      v = new TypedField("s", this.getInt16(i));
      i += 2;
      break;
    case "u":
      v = new TypedField("u", this.getUint16(i));
      i += 2;
      break;
    case "I":
      v = this.getInt32(i);
      i += 4;
      break;
    case "i":
      v = new TypedField("i", this.getUint32(i));
      i += 4;
      break;
    case "l": {
      const n = this.getBigInt64(i);
      i += 8;
      // plain integers outside the 32-bit range are written as l: only the others need a tag
      const plain = (n < -(2n ** 31n) || n >= 2n ** 31n) && n >= BigInt(Number.MIN_SAFE_INTEGER) &&
        n <= BigInt(Number.MAX_SAFE_INTEGER);
      v = plain ? Number(n) : new TypedField("l", n);
      break;
    }
    case "f":
      v = new TypedField("f", this.getFloat32(i));
      i += 4;
      break;
    case "d": {
      const n = this.getFloat64(i);
      i += 8;
      // JSON would read an integral double back as an integer
      v = Number.isInteger(n) || !Number.isFinite(n) ? new TypedField("d", n) : n;
      break;
    }
    case "D": {
      const scale = this.getUint8(i);
      const value = this.getInt32(i + 1);
      i += 5;
      v = new TypedField("D", { scale, value });
      break;
    }
    case "S": {
      const [s, len] = this.getLongString(i);
      v = s;
      i += len;
      break;
    }
    case "A":
    case "F": {
      const [n, len] = nested(this, i, type);
      v = n;
      i += len;
      break;
    }
    case "x": {
      const len = this.getUint32(i);
      v = new TypedField(
        "x",
        new Uint8Array(this.buffer.slice(this.byteOffset + i + 4, this.byteOffset + i + 4 + len)),
      );
      i += 4 + len;
      break;
    }
    case "T":
      v = new TypedField("T", this.getBigUint64(i)); // unsigned, as RabbitMQ reads and writes it
      i += 8;
      break;
    case "V":
      v = null;
      break;
    default:
      throw new Error(`header field type '${type}' is not AMQP 0-9-1`);
  }
  return [v, i - byteOffset];
}

/** Idempotent; call before any message is received. */
export function installTypedFieldDecoding(): void {
  if (installed) return;
  installed = true;
  (AMQPView.prototype as unknown as { getField: typeof getField }).getField = getField;
}
