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

type Reader = (view: AMQPView, at: number) => FieldValue;

/** The fixed-width types: each one's size and how it reads into kmq's typed form. */
const FIXED = new Map<string, [number, Reader]>([
  ["t", [1, (v, at) => v.getUint8(at) !== 0]],
  ["b", [1, (v, at) => new TypedField("b", v.getInt8(at))]],
  ["B", [1, (v, at) => new TypedField("B", v.getUint8(at))]],
  ["s", [2, (v, at) => new TypedField("s", v.getInt16(at))]],
  ["u", [2, (v, at) => new TypedField("u", v.getUint16(at))]],
  ["I", [4, (v, at) => v.getInt32(at)]],
  ["i", [4, (v, at) => new TypedField("i", v.getUint32(at))]],
  ["l", [8, (v, at) => long(v.getBigInt64(at))]],
  ["f", [4, (v, at) => new TypedField("f", v.getFloat32(at))]],
  ["d", [8, (v, at) => double(v.getFloat64(at))]],
  ["D", [5, (v, at) => new TypedField("D", { scale: v.getUint8(at), value: v.getInt32(at + 1) })]],
  ["T", [8, (v, at) => new TypedField("T", v.getBigUint64(at))]], // unsigned, as RabbitMQ reads and writes it
  ["V", [0, () => null]],
]);

/** Plain integers outside the 32-bit range are written as l: only the others need a tag. */
function long(n: bigint): FieldValue {
  const plain = (n < -(2n ** 31n) || n >= 2n ** 31n) && n >= BigInt(Number.MIN_SAFE_INTEGER) &&
    n <= BigInt(Number.MAX_SAFE_INTEGER);
  return plain ? Number(n) : new TypedField("l", n);
}

/** JSON would read an integral double back as an integer: such a one keeps its tag. */
function double(n: number): FieldValue {
  return Number.isInteger(n) || !Number.isFinite(n) ? new TypedField("d", n) : n;
}

function getField(this: AMQPView, byteOffset: number): [FieldValue, number] {
  const type = String.fromCharCode(this.getUint8(byteOffset));
  const at = byteOffset + 1;
  const fixed = FIXED.get(type);
  if (fixed) return [fixed[1](this, at), 1 + fixed[0]];
  switch (type) {
    case "S": {
      const [s, len] = this.getLongString(at);
      return [s, 1 + len];
    }
    case "A":
    case "F": {
      const [n, len] = nested(this, at, type);
      return [n, 1 + len];
    }
    case "x": {
      const len = this.getUint32(at);
      const start = this.byteOffset + at + 4;
      return [new TypedField("x", new Uint8Array(this.buffer.slice(start, start + len))), 5 + len];
    }
    default:
      throw new Error(`header field type '${type}' is not AMQP 0-9-1`);
  }
}

/** Idempotent; call before any message is received. */
export function installTypedFieldDecoding(): void {
  if (installed) return;
  installed = true;
  (AMQPView.prototype as unknown as { getField: typeof getField }).getField = getField;
}
