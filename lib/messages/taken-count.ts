/**
 * How many messages `move -n` has taken out of its source, each counted once. After a lost source
 * connection the broker redelivers every message it had not seen acked: those kmq had not acked
 * yet, and those whose ack a stopping broker dropped (a whole window of 500 in one restart). A
 * redelivered message that is one of the last messages taken before the connection was lost
 * counts no more: it is moved again (at-least-once), but -n N still takes N messages out of the
 * source.
 */
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { timestampOf } from "./timestamp.ts";

export class TakenCount {
  /** Messages taken, redeliveries of recent ones not counted. */
  count = 0;
  /** Fingerprints taken on this source connection, oldest first. */
  private current: string[] = [];
  /** Fingerprints taken before the last lost connection, and how often each is among them. */
  private readonly before = new Map<string, number>();
  private beforeOrder: string[] = [];

  /**
   * @param keep how many of the last messages to recognise again: the broker holds at most the
   * prefetch window unacked, so twice that covers every message it can redeliver
   */
  constructor(private readonly keep: number) {}

  /**
   * The source connection was lost: what was taken so far may come again. Only a redelivery after
   * this can be a repeat; equal messages that were redelivered for another reason (a peek, another
   * consumer that stopped) are each counted.
   */
  reconnected(): void {
    this.beforeOrder = [...this.beforeOrder, ...this.current].slice(-this.keep);
    this.current = [];
    this.before.clear();
    for (const print of this.beforeOrder) this.before.set(print, (this.before.get(print) ?? 0) + 1);
  }

  /** Counts a message unless it is the redelivery of one taken before the connection was lost. */
  take(msg: AMQPMessage): void {
    const print = fingerprint(msg);
    const seen = this.before.get(print) ?? 0;
    if (msg.redelivered && seen > 0) {
      // once: two equal messages taken, then redelivered, count as two
      if (seen > 1) this.before.set(print, seen - 1);
      else this.before.delete(print);
      this.beforeOrder.splice(this.beforeOrder.indexOf(print), 1);
      return;
    }
    this.count++;
    this.current.push(print);
    if (this.current.length > this.keep) this.current.shift();
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
