/**
 * How many messages `move -n` has taken out of its source, each counted once. After a lost source
 * connection the broker redelivers every message it had not seen acked: those kmq had not acked
 * yet, and those whose ack a stopping broker dropped (a whole window of 500 in one restart). A
 * redelivered message that is one of the last messages taken counts no more: it is moved again
 * (at-least-once), but -n N still takes N messages out of the source.
 */
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { timestampOf } from "./client-fixes.ts";

export class TakenCount {
  /** Messages taken, redeliveries of recent ones not counted. */
  count = 0;
  /** Fingerprints of the last messages taken, oldest first, and how often each is among them. */
  private readonly recent: string[] = [];
  private readonly inRecent = new Map<string, number>();

  /**
   * @param keep how many of the last messages to recognise again: the broker holds at most the
   * prefetch window unacked, so twice that covers every message it can redeliver
   */
  constructor(private readonly keep: number) {}

  /** Counts a message unless it is the redelivery of a recent one. */
  take(msg: AMQPMessage): void {
    const print = fingerprint(msg);
    const seen = this.inRecent.get(print) ?? 0;
    if (msg.redelivered && seen > 0) {
      this.forget(print); // once: two equal messages taken, then redelivered, count as two
      return;
    }
    this.count++;
    this.recent.push(print);
    this.inRecent.set(print, seen + 1);
    if (this.recent.length > this.keep) this.forget(this.recent.shift()!);
  }

  private forget(print: string): void {
    const seen = this.inRecent.get(print) ?? 0;
    if (seen > 1) this.inRecent.set(print, seen - 1);
    else this.inRecent.delete(print);
  }
}

/** The body's FNV-1a hash and length with the properties that tell messages apart. */
function fingerprint(msg: AMQPMessage): string {
  const body = msg.body ?? new Uint8Array(0);
  let hash = 0x811c9dc5;
  for (let i = 0; i < body.length; i++) hash = Math.imul(hash ^ body[i]!, 0x01000193);
  const p = msg.properties;
  return `${hash >>> 0}:${body.length}:${p.messageId ?? ""}:${timestampOf(p) ?? ""}:${p.correlationId ?? ""}`;
}
