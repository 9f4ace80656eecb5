import type { AMQPChannel, AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";
import { type BrokerOptions, closeQuietly, connect } from "./connection.ts";
import { declareTopology, type Topology } from "./declarations.ts";
import { classifyError, DeliveryError, ExitCode, InputError, KmqError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import {
  ByteWriter,
  encodeProperties,
  FrameSizeError,
  type MessageProperties,
  writePublish,
} from "./wire.ts";

/** Unconfirmed messages in flight at most: enough to keep the broker busy, few enough to resend. */
export const DEFAULT_WINDOW = 5000;
/** Unconfirmed body bytes in flight at most (at least one message always goes). */
export const DEFAULT_WINDOW_BYTES = 4 * 1024 * 1024;
/** Frames are gathered up to this size and written to the socket in one call. */
const WRITE_BATCH_BYTES = 128 * 1024;

/** One message to publish, and where it came from so a report can name it. */
export interface OutMessage {
  exchange: string;
  routingKey: string;
  properties: MessageProperties;
  body: Uint8Array;
  /** "line 17", "argument 2", "record 5" … */
  origin: string;
  /** Told once the broker settled it: confirmed (true), or nacked or returned (false). */
  settled?: (delivered: boolean) => void;
}

export interface PublisherOptions {
  broker: BrokerOptions;
  topology: Topology;
  mandatory: boolean;
  /** Wait for publisher confirms (the default); without them nothing can be retried. */
  confirm: boolean;
  /** Seconds to keep reconnecting after the connection drops. */
  retryTimeout: number;
  log: Log;
  window?: number;
  windowBytes?: number;
}

export interface PublishCounts {
  published: number;
  confirmed: number;
  returned: number;
  nacked: number;
  /** Sent again after a reconnect, because their confirm had not come. */
  republished: number;
}

interface InFlight {
  msg: OutMessage;
  seq: number;
  returned: boolean;
}

interface Link {
  client: AMQPClient;
  channel: AMQPChannel;
  frameMax: number;
}

/**
 * Publishes with a bounded window of unconfirmed messages, batching frames into few socket
 * writes, and accounts for every message: confirmed, returned (attributed to the message that
 * came back), nacked, or — when the connection drops — sent again on a new connection.
 */
export class Publisher {
  readonly counts: PublishCounts = { published: 0, confirmed: 0, returned: 0, nacked: 0, republished: 0 };
  /** Origins of the first returned and nacked messages, for the report. */
  readonly returnedSamples: string[] = [];
  readonly nackedSamples: string[] = [];
  private link?: Link;
  /** Unconfirmed messages in publish order; confirms remove them from the front (mostly). */
  private inflight: InFlight[] = [];
  private head = 0;
  private inflightBytes = 0;
  private nextSeq = 1;
  private returnCursor = 0;
  private out = new ByteWriter(WRITE_BATCH_BYTES * 2);
  /** Writers whose bytes the socket has written, reused to spare the garbage collector. */
  private spareWriters: ByteWriter[] = [];
  private flushScheduled = false;
  private lastWrite: Promise<void> = Promise.resolve();
  private unflushedBytes = 0;
  private wake?: () => void;
  private lost?: unknown;
  private fatal?: KmqError;
  private closing = false;
  private blocked?: Promise<void>;
  /** When the last confirm came (or publishing started), and the connection losses since. */
  private progressAt = Date.now();
  private lossesSinceProgress = 0;
  private propsCache = new WeakMap<MessageProperties, Uint8Array>();
  private readonly window: number;
  private readonly windowBytes: number;

  /** The broker options connections are made with (failover counts are kept per options). */
  get broker(): PublisherOptions["broker"] {
    return this.o.broker;
  }

  constructor(private readonly o: PublisherOptions) {
    this.window = o.window ?? DEFAULT_WINDOW;
    this.windowBytes = o.windowBytes ?? DEFAULT_WINDOW_BYTES;
  }

  /** Connects, declares the topology and enables confirms; failures here are not retried. */
  async open(): Promise<void> {
    this.link = await this.connectOnce();
  }

  private async connectOnce(): Promise<Link> {
    const client = await connect({ broker: this.o.broker, name: "kmq produce", log: this.o.log });
    try {
      // confirm.select goes out right behind the declarations, not a round trip later
      const { channel } = await declareTopology(client, this.o.topology, this.o.log, {
        confirm: this.o.confirm,
        broker: this.o.broker,
      });
      channel.publishConfirmed = (tag: number, multiple: boolean, nack: boolean) =>
        this.onConfirm(tag, multiple, nack);
      channel.onReturn = (msg: AMQPMessage) => this.onReturn(msg);
      channel.onerror = (reason: string) => this.onChannelClosed(reason);
      client.ondisconnect = (err?: Error) => this.onLost(err ?? new Error("connection closed"));
      client.onblocked = (reason: string) => this.onBlocked(reason);
      client.onunblocked = () => this.onUnblocked();
      return { client, channel, frameMax: client.frameMax };
    } catch (err) {
      await closeQuietly(client);
      throw err;
    }
  }

  /** Queues one message; resolves when the window has room for the next. */
  async publish(msg: OutMessage): Promise<void> {
    while (true) {
      this.throwIfFatal();
      if (this.lost) await this.reconnect();
      else if (this.blocked) await this.blocked;
      else if (this.inflightCount() >= this.window || this.inflightBytes >= this.windowBytes) {
        await this.sleep();
      } else if (this.unflushedBytes > 8 * WRITE_BATCH_BYTES) await this.flushAndWait();
      else break;
    }
    // a stall is counted from the first message waiting for a confirm, not from an idle input
    if (this.inflightCount() === 0) this.progressAt = Date.now();
    const entry: InFlight = { msg, seq: this.nextSeq++, returned: false };
    this.write(entry);
    this.counts.published++;
    if (this.o.confirm) {
      this.inflight.push(entry);
      this.inflightBytes += msg.body.length;
    }
  }

  /** Waits until every published message is confirmed, nacked or returned (reconnecting if need be). */
  async drain(): Promise<void> {
    while (true) {
      this.throwIfFatal();
      if (this.lost) {
        await this.reconnect();
        continue;
      }
      this.flush();
      if (!this.o.confirm) {
        await this.lastWrite;
        // a channel's close-ok comes after every basic.return it sent: then all returns are counted
        await this.link?.channel.close().catch(() => {});
        this.throwIfFatal();
        return;
      }
      if (this.inflightCount() === 0) return;
      await this.sleep();
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.link) await closeQuietly(this.link.client);
  }

  /**
   * Throws when any message was not delivered (exit 7), naming how many and which; a channel
   * the broker closed throws its own error (exit 6, 5 …).
   */
  check(): void {
    this.throwIfFatal();
    const c = this.counts;
    if (c.returned === 0 && c.nacked === 0) return;
    const parts: string[] = [];
    if (c.returned) {
      parts.push(
        `${c.returned} returned as unroutable (${this.returnedSamples.join(", ")}${
          c.returned > this.returnedSamples.length ? ", …" : ""
        }): no queue is bound for them; bind one or pass --no-mandatory`,
      );
    }
    if (c.nacked) {
      parts.push(
        `${c.nacked} nacked by the broker (${this.nackedSamples.join(", ")}${
          c.nacked > this.nackedSamples.length ? ", …" : ""
        })`,
      );
    }
    throw new DeliveryError(
      `${c.returned + c.nacked} of ${c.published} messages not delivered: ${parts.join("; ")}`,
    );
  }

  /**
   * Stops waiting: whatever publish(), drain() or a reconnect waits on ends with `err` (used when
   * confirms do not come within --stop-timeout after a stop signal).
   */
  abandon(err: KmqError): void {
    this.fatal ??= err;
    this.unblock?.();
    this.blocked = undefined;
    this.wakeUp();
  }

  /** Where publishing stands, for a failure's message: confirmed, and the first unconfirmed. */
  progress(): string {
    const first = this.firstUnconfirmed();
    const waiting = this.inflightCount();
    return `${this.delivered} message(s) confirmed` +
      (first ? `; ${waiting} unconfirmed, the first of them ${first.origin}` : "");
  }

  /** The failure that ended publishing, if any (its message already says what was confirmed). */
  /**
   * After a stop signal, confirms get `seconds` to come (a memory alarm or a full queue that
   * rejects may hold them back for ever); then publishing is abandoned: exit 7 naming them.
   */
  boundStop(seconds: number, stop: AbortSignal | undefined): { dispose(): void } {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onStop = () => {
      timer = setTimeout(() => {
        this.abandon(
          new DeliveryError(
            `stopped by ${
              String(stop?.reason)
            }: no confirm within --stop-timeout ${seconds} s; ${this.progress()}`,
          ),
        );
      }, seconds * 1000);
    };
    stop?.addEventListener("abort", onStop, { once: true });
    return {
      dispose: () => {
        clearTimeout(timer);
        stop?.removeEventListener("abort", onStop);
      },
    };
  }

  /** The connection to the broker published to, while there is one. */
  get connection(): AMQPClient | undefined {
    return this.link?.client;
  }

  get failure(): KmqError | undefined {
    return this.fatal;
  }

  /** Messages confirmed as delivered (a returned message is confirmed too, but not delivered). */
  get delivered(): number {
    return this.counts.confirmed - this.counts.returned;
  }

  /** The earliest message still waiting for its confirm, if any. */
  firstUnconfirmed(): OutMessage | undefined {
    return this.inflight[this.head]?.msg;
  }

  private inflightCount(): number {
    return this.inflight.length - this.head;
  }

  private throwIfFatal(): void {
    if (this.fatal) throw this.fatal;
  }

  private sleep(): Promise<void> {
    this.flush();
    return new Promise((resolve) => (this.wake = resolve));
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private encoded(p: MessageProperties): Uint8Array {
    let bytes = this.propsCache.get(p);
    if (!bytes) {
      bytes = encodeProperties(p);
      this.propsCache.set(p, bytes);
    }
    return bytes;
  }

  private write(entry: InFlight): void {
    const link = this.link!;
    const { msg } = entry;
    const before = this.out.pos;
    try {
      writePublish(
        this.out,
        link.channel.id,
        link.frameMax,
        msg.exchange,
        msg.routingKey,
        this.o.mandatory,
        this.encoded(msg.properties),
        msg.body,
      );
    } catch (err) {
      this.out.pos = before; // drop the partial frames
      if (err instanceof FrameSizeError || err instanceof RangeError) {
        throw new InputError(`${msg.origin}: ${err.message}`);
      }
      throw err;
    }
    this.unflushedBytes += this.out.pos - before;
    if (this.out.pos >= WRITE_BATCH_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.out.pos === 0 || !this.link || this.lost) return;
    // the socket keeps the bytes until written: hand it this writer, take a spare one
    const sent = this.out;
    const bytes = sent.view();
    this.out = this.spareWriters.pop() ?? new ByteWriter(WRITE_BATCH_BYTES * 2);
    const size = bytes.length;
    const recycle = () => {
      this.unflushedBytes -= size;
      sent.pos = 0;
      if (this.spareWriters.length < 8) this.spareWriters.push(sent);
    };
    this.lastWrite = this.link.client.send(bytes).then(recycle, (err) => {
      recycle();
      this.onLost(err);
    });
  }

  private async flushAndWait(): Promise<void> {
    this.flush();
    await this.lastWrite;
  }

  private onConfirm(tag: number, multiple: boolean, nack: boolean): void {
    this.progressAt = Date.now();
    this.lossesSinceProgress = 0;
    const settle = (e: InFlight) => {
      this.inflightBytes -= e.msg.body.length;
      e.msg.settled?.(!nack && !e.returned);
      if (nack) {
        this.counts.nacked++;
        if (this.nackedSamples.length < 5) this.nackedSamples.push(e.msg.origin);
      } else {
        this.counts.confirmed++;
      }
    };
    if (multiple) {
      while (this.head < this.inflight.length && this.inflight[this.head]!.seq <= tag) {
        settle(this.inflight[this.head]!);
        // drop the settled entry now: it holds the body, which must not wait for compact()
        this.inflight[this.head] = SETTLED;
        this.head++;
      }
    } else {
      const i = this.findSeq(tag);
      if (i === -1) return;
      settle(this.inflight[i]!);
      this.inflight.splice(i, 1);
      if (i < this.returnCursor) this.returnCursor--;
    }
    if (this.returnCursor < this.head) this.returnCursor = this.head;
    this.compact();
    this.wakeUp();
  }

  /** Sequence numbers ascend, so a binary search finds one in the window. */
  private findSeq(seq: number): number {
    let lo = this.head;
    let hi = this.inflight.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.inflight[mid]!.seq;
      if (s === seq) return mid;
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  private compact(): void {
    if (this.head > 4096 && this.head * 2 > this.inflight.length) {
      this.inflight = this.inflight.slice(this.head);
      this.returnCursor -= this.head;
      this.head = 0;
    }
  }

  /**
   * The broker returns an unroutable message before it confirms it, in publish order, so the
   * returned message is the next unconfirmed one with the same exchange, key and body.
   */
  private onReturn(returned: AMQPMessage): void {
    this.counts.returned++;
    const body = returned.body ?? new Uint8Array(0);
    let origin: string | undefined;
    for (let i = Math.max(this.returnCursor, this.head); i < this.inflight.length; i++) {
      const e = this.inflight[i]!;
      if (
        !e.returned && e.msg.exchange === returned.exchange && e.msg.routingKey === returned.routingKey &&
        equalBytes(e.msg.body, body)
      ) {
        e.returned = true;
        this.returnCursor = i + 1;
        origin = e.msg.origin;
        break;
      }
    }
    const sample = `${origin ? origin + " " : ""}with routing key '${returned.routingKey}'`;
    if (this.returnedSamples.length < 5) this.returnedSamples.push(sample);
    this.sayReturned(sample);
  }

  private lastReturnNote = 0;

  /**
   * Said when it happens, not only at the end: `tail -f log | kmq produce -l` may never end. The
   * first return at once, then at most one line every 5 s with the count so far.
   */
  private sayReturned(sample: string): void {
    const now = Date.now();
    if (this.counts.returned > 1 && now - this.lastReturnNote < 5000) return;
    this.lastReturnNote = now;
    this.o.log.warn(
      this.counts.returned === 1
        ? `${sample} was returned as unroutable: no queue is bound for it (kmq carries on and exits 7 at ` +
          "the end; bind a queue, or pass --no-mandatory to let the broker drop such messages)"
        : `${this.counts.returned} messages returned as unroutable so far (the last: ${sample})`,
    );
  }

  private onChannelClosed(reason: string): void {
    // the client reports a closed connection here too; ondisconnect handles that
    if (!/^channel \d+ closed/.test(reason) || this.closing) return;
    if (!this.fatal) {
      const input = this.inputAtFault(reason);
      const refused = classifyError(
        new Error(reason.replace(/^channel \d+ closed: /, "")),
        this.where(reason),
      );
      this.fatal = input ?? new KmqError(refused.exitCode, `${refused.message}; ${this.progress()}`);
    }
    this.wakeUp();
  }

  /**
   * A channel the broker closed because of one message's data (too big, a foreign user_id) is bad
   * input (exit 3) naming that message.
   */
  private inputAtFault(reason: string): InputError | undefined {
    const unconfirmed = this.inflight.slice(this.head);
    const tooBig = /message size (\d+) is larger than configured max size (\d+)/.exec(reason);
    if (tooBig) {
      const [size, max] = [Number(tooBig[1]), Number(tooBig[2])];
      const culprit = unconfirmed.find((e) => e.msg.body.length === size) ??
        unconfirmed.find((e) => e.msg.body.length > max);
      return new InputError(
        `${culprit?.msg.origin ?? "a message"} is ${size} bytes, over the broker's max message size of ` +
          `${max} bytes: split it or raise max_message_size; ${this.delivered} message(s) confirmed so far`,
      );
    }
    const userId = /user_id property set to '(.*)' but authenticated user was '(.*)'/.exec(reason);
    if (userId) {
      const culprit = unconfirmed.find((e) => e.msg.properties.userId === userId[1]);
      return new InputError(
        `${culprit?.msg.origin ?? "a message"} has user_id '${userId[1]}', but the broker only takes ` +
          `the connected user's ('${userId[2]}'): drop user_id or connect as that user; ${this.progress()}`,
      );
    }
    return undefined;
  }

  /** The step that failed: the exchange a refusal names (a record's own, with --jsonl) and its first message. */
  private where(reason = ""): string {
    const named = /no exchange '([^']*)'|exchange '([^']*)'/.exec(reason);
    const name = named ? (named[1] ?? named[2] ?? "") : this.o.topology.exchange.name;
    const culprit = named
      ? this.inflight.slice(this.head).find((e) => e.msg.exchange === name)?.msg.origin
      : undefined;
    const target = name === "" ? "publishing" : `publishing to exchange '${name}'`;
    return culprit ? `${target} (${culprit})` : target;
  }

  private onLost(err: unknown): void {
    if (this.closing || this.lost) return;
    const classified = classifyError(err, "connection lost");
    this.fatal ??= this.finalLoss(classified);
    if (!this.fatal) {
      this.lost = err;
      // said now, not when the next message comes: stdin may be quiet for a long time
      this.o.log.warn(
        `${
          classified.message.replace(/; check that.*$/, "")
        }; reconnecting for up to ${this.o.retryTimeout} s`,
      );
    }
    // a publish waiting for the broker to unblock must see the loss (or the failure) now
    this.unblock?.();
    this.blocked = undefined;
    this.wakeUp();
  }

  /**
   * Only the network or a restarting broker (exit 4) is worth another connection. The broker
   * refusing or failing (auth, a declaration, a header it cannot hold), and losses that go on with
   * nothing confirmed for --retry-timeout, are final: resending would repeat them forever.
   */
  private finalLoss(classified: KmqError): KmqError | undefined {
    if (classified.exitCode !== ExitCode.unreachable) {
      return new KmqError(classified.exitCode, `${classified.message}; ${this.progress()}`);
    }
    if (!this.o.confirm) {
      return new DeliveryError(
        `connection lost after ${this.counts.published} messages were sent (${classified.message}); ` +
          "with --no-confirm kmq cannot tell which of them arrived",
      );
    }
    // reconnecting works, but nothing gets confirmed (a message that breaks the connection each
    // time it is sent): past --retry-timeout without progress, resending is a loop, not a retry
    if (this.inflightCount() === 0) return undefined; // nothing was waiting: no stall
    this.lossesSinceProgress++;
    const stalled = (Date.now() - this.progressAt) / 1000;
    if (this.lossesSinceProgress < 2 || stalled < this.o.retryTimeout) return undefined;
    return new KmqError(
      ExitCode.brokerRefused,
      `${
        classified.message.replace(/; check that.*$/, "")
      }: the connection was lost ${this.lossesSinceProgress} ` +
        `times with no message confirmed for ${
          Math.round(stalled)
        } s (--retry-timeout ${this.o.retryTimeout}): ` +
        `giving up, resending would repeat it; ${this.progress()}`,
    );
  }

  private onBlocked(reason: string): void {
    this.o.log.warn(`the broker blocked publishing (${reason}); waiting until it unblocks`);
    this.blocked = new Promise((resolve) => {
      this.unblock = resolve;
    });
  }

  private unblock?: () => void;

  private onUnblocked(): void {
    this.o.log.warn("the broker unblocked publishing; carrying on");
    this.blocked = undefined;
    this.unblock?.();
  }

  /** Reconnects with backoff until --retry-timeout runs out, then sends every unconfirmed message again. */
  private async reconnect(): Promise<void> {
    const deadline = Date.now() + this.o.retryTimeout * 1000;
    if (this.link) await closeQuietly(this.link.client);
    this.link = undefined;
    this.out.pos = 0;
    this.unflushedBytes = 0;
    let delay = 100;
    let last: unknown = this.lost;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
      this.throwIfFatal(); // abandoned while waiting
      delay = Math.min(delay * 2, 5000);
      try {
        this.link = await this.connectOnce();
        break;
      } catch (err) {
        last = err;
        if (err instanceof KmqError && err.exitCode !== ExitCode.unreachable) {
          this.fatal = new KmqError(err.exitCode, `${err.message}; ${this.progress()}`);
          throw this.fatal;
        }
      }
    }
    if (!this.link) {
      const first = this.firstUnconfirmed();
      this.fatal = new DeliveryError(
        `gave up reconnecting after ${this.o.retryTimeout} s (${
          classifyError(last, "last attempt").message.replace(/; check that.*$/, "")
        }): ` +
          `${this.delivered} of ${this.counts.published} messages confirmed, ${this.inflightCount()} unconfirmed` +
          (first ? ` starting at ${first.origin}` : ""),
      );
      throw this.fatal;
    }
    this.lost = undefined;
    const pending = this.inflight.slice(this.head);
    this.inflight = [];
    this.head = 0;
    this.returnCursor = 0;
    this.nextSeq = 1;
    this.inflightBytes = 0;
    for (const e of pending) {
      const again: InFlight = { msg: e.msg, seq: this.nextSeq++, returned: false };
      this.write(again);
      this.inflight.push(again);
      this.inflightBytes += e.msg.body.length;
    }
    this.counts.republished += pending.length;
    this.o.log.warn(`reconnected; sent ${pending.length} unconfirmed message(s) again`);
  }
}

/** Stands in for a settled entry until compact() drops it, so its body can be collected. */
const SETTLED: InFlight = {
  msg: { exchange: "", routingKey: "", properties: {}, body: new Uint8Array(0), origin: "" },
  seq: -1,
  returned: false,
};

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
