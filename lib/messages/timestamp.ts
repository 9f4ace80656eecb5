/**
 * The timestamp property, exact: AMQP's timestamp is unsigned 64-bit seconds, which neither a
 * JavaScript number nor a Date holds whole (2^64-1; microseconds written by mistake). The client's
 * reading is mended in client-fixes.ts to produce a {@link WireTimestamp}.
 */
import type { AMQPProperties } from "@cloudamqp/amqp-client";

/**
 * A timestamp property as it was on the wire. It is a Date for code that wants one (Invalid Date
 * where the value is outside the Date range); `seconds` is the exact value.
 */
export class WireTimestamp extends Date {
  constructor(readonly seconds: bigint) {
    const ms = seconds * 1000n;
    super(ms <= 8_640_000_000_000_000n ? Number(ms) : NaN);
  }
}

/** The exact timestamp property of a received message, in seconds since the epoch. */
export function timestampOf(p: AMQPProperties): bigint | undefined {
  const t = p.timestamp;
  if (t === undefined) return undefined;
  return t instanceof WireTimestamp ? t.seconds : BigInt(Math.floor(t.getTime() / 1000));
}
