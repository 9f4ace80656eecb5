/**
 * The messages a publisher has sent and the broker has not yet confirmed, in publish order, with
 * their publisher-confirm sequence numbers: what a confirm settles, what a basic.return names,
 * and what is sent again after a reconnect.
 */
import type { MessageProperties } from "./wire.ts";

export interface OutMessage {
  exchange: string;
  routingKey: string;
  properties: MessageProperties;
  body: Uint8Array;
  /** Where the message came from ("argument 2", "line 17"), for error messages. */
  origin: string;
  /** Told once the broker settled the message: confirmed (true) or nacked/returned (false). */
  settled?: (delivered: boolean) => void;
}

export interface InFlight {
  msg: OutMessage;
  seq: number;
  returned: boolean;
}

/** Stands in for a settled entry until compact() drops it, so its body can be collected. */
const SETTLED: InFlight = {
  msg: { exchange: "", routingKey: "", properties: {}, body: new Uint8Array(0), origin: "" },
  seq: -1,
  returned: false,
};

export class ConfirmWindow {
  private entries: InFlight[] = [];
  private head = 0;
  private nextSeq = 1;
  /** Returns come in publish order: the next one is searched from after the last one found. */
  private returnCursor = 0;
  /** The body bytes of the unconfirmed messages. */
  bytes = 0;

  /** Unconfirmed messages. */
  get count(): number {
    return this.entries.length - this.head;
  }

  /** The entry for the next message published on this channel (its sequence number taken). */
  next(msg: OutMessage): InFlight {
    return { msg, seq: this.nextSeq++, returned: false };
  }

  /** Waits for `entry`'s confirm. */
  track(entry: InFlight): void {
    this.entries.push(entry);
    this.bytes += entry.msg.body.length;
  }

  /** The earliest message still waiting for its confirm, if any. */
  first(): OutMessage | undefined {
    return this.entries[this.head]?.msg;
  }

  /** The unconfirmed entries, oldest first. */
  unconfirmed(): InFlight[] {
    return this.entries.slice(this.head);
  }

  /** Settles what a confirm (ack or nack) covers, calling `settle` on each entry in order. */
  confirm(tag: number, multiple: boolean, settle: (e: InFlight) => void): void {
    const done = (e: InFlight) => {
      this.bytes -= e.msg.body.length;
      settle(e);
    };
    if (multiple) {
      while (this.head < this.entries.length && this.entries[this.head]!.seq <= tag) {
        done(this.entries[this.head]!);
        // drop the settled entry now: it holds the body, which must not wait for compact()
        this.entries[this.head] = SETTLED;
        this.head++;
      }
    } else {
      const i = this.findSeq(tag);
      if (i === -1) return;
      done(this.entries[i]!);
      this.entries.splice(i, 1);
      if (i < this.returnCursor) this.returnCursor--;
    }
    if (this.returnCursor < this.head) this.returnCursor = this.head;
    this.compact();
  }

  /**
   * The broker returns an unroutable message before it confirms it, in publish order, so the
   * returned message is the next unconfirmed one with the same exchange, key and body.
   */
  markReturned(exchange: string, routingKey: string, body: Uint8Array): OutMessage | undefined {
    for (let i = Math.max(this.returnCursor, this.head); i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (
        !e.returned && e.msg.exchange === exchange && e.msg.routingKey === routingKey &&
        equalBytes(e.msg.body, body)
      ) {
        e.returned = true;
        this.returnCursor = i + 1;
        return e.msg;
      }
    }
    return undefined;
  }

  /** Empties the window for a new channel (sequence numbers start again) and hands back what was in it. */
  reset(): OutMessage[] {
    const pending = this.unconfirmed().map((e) => e.msg);
    this.entries = [];
    this.head = 0;
    this.returnCursor = 0;
    this.nextSeq = 1;
    this.bytes = 0;
    return pending;
  }

  /** Sequence numbers ascend, so a binary search finds one in the window. */
  private findSeq(seq: number): number {
    let lo = this.head;
    let hi = this.entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.entries[mid]!.seq;
      if (s === seq) return mid;
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  private compact(): void {
    if (this.head > 4096 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.returnCursor -= this.head;
      this.head = 0;
    }
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
