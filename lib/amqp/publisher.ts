/**
 * Publishing with confirms over one channel that survives its connection: a window of unconfirmed
 * messages (confirm-window.ts) bounds memory and is sent again after a reconnect; frames are
 * encoded in batches (frame-batcher.ts); what failed is worded in publish-failures.ts.
 */
import type { AMQPChannel, AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";
import { type BrokerOptions, closeQuietly, connect } from "./connection.ts";
import { ConfirmWindow, type InFlight, type OutMessage } from "./confirm-window.ts";
import { declareTopology, type Topology } from "./declarations.ts";
import { FrameBatcher, WRITE_BATCH_BYTES } from "./frame-batcher.ts";
import {
  failedStep,
  inputAtFault,
  type PublishCounts,
  ReturnNotes,
  stalledLoss,
  undelivered,
} from "./publish-failures.ts";
import { classifyError, DeliveryError, ExitCode, KmqError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";

export type { OutMessage } from "./confirm-window.ts";
export type { PublishCounts } from "./publish-failures.ts";

/** Unconfirmed messages in flight at most: enough to keep the broker busy, few enough to resend. */
export const DEFAULT_WINDOW = 5000;
/** Unconfirmed body bytes in flight at most, so large messages cannot exhaust memory. */
export const DEFAULT_WINDOW_BYTES = 4 * 1024 * 1024;

export interface PublisherOptions {
  broker: BrokerOptions;
  topology: Topology;
  mandatory: boolean;
  /** Wait for publisher confirms (off: fire and forget, nothing can be resent). */
  confirm: boolean;
  /** Seconds to keep reconnecting after a lost connection. */
  retryTimeout: number;
  log: Log;
  window?: number;
  windowBytes?: number;
  /** The connection's name in the management UI (default `kmq produce`). */
  name?: string;
}

interface Link {
  client: AMQPClient;
  channel: AMQPChannel;
}

/**
 * Publishes messages on one channel, keeping at most `window` unconfirmed; a lost connection is
 * re-opened within --retry-timeout and every unconfirmed message sent again (at-least-once).
 */
export class Publisher {
  readonly counts: PublishCounts = { published: 0, confirmed: 0, returned: 0, nacked: 0, republished: 0 };
  /** The first few nacked messages, named for the final error (returns: in `returns`). */
  private readonly nackedSamples: string[] = [];
  private readonly returns: ReturnNotes;
  private link?: Link;
  private readonly unconfirmed = new ConfirmWindow();
  private readonly frames: FrameBatcher;
  private wake?: () => void;
  private lost?: unknown;
  private fatal?: KmqError;
  private closing = false;
  /** Open unless the broker blocked publishing (a memory or disk alarm). */
  private readonly gate = new Gate();
  /** When a message was last confirmed (or the first began to wait): a stall is measured from it. */
  private progressAt = Date.now();
  private lossesSinceProgress = 0;
  private readonly window: number;
  private readonly windowBytes: number;

  /** The broker options connections are made with (failover counts are kept per options). */
  get broker(): PublisherOptions["broker"] {
    return this.o.broker;
  }

  constructor(private readonly o: PublisherOptions) {
    this.window = o.window ?? DEFAULT_WINDOW;
    this.windowBytes = o.windowBytes ?? DEFAULT_WINDOW_BYTES;
    this.frames = new FrameBatcher(o.mandatory, (err) => this.onLost(err));
    this.returns = new ReturnNotes(o.log);
  }

  /** Connects, declares the topology and enables confirms; failures here are not retried. */
  async open(): Promise<void> {
    this.link = await this.connectOnce();
  }

  private async connectOnce(): Promise<Link> {
    const client = await connect({ ...this.o, name: this.o.name ?? "kmq produce" });
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
      client.onblocked = (reason: string) => {
        this.o.log.warn(`the broker blocked publishing (${reason}); waiting until it unblocks`);
        this.gate.close();
      };
      client.onunblocked = () => {
        this.o.log.warn("the broker unblocked publishing; carrying on");
        this.gate.open();
      };
      this.frames.target = { client, channelId: channel.id, frameMax: client.frameMax };
      return { client, channel };
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
      else if (this.gate.closed) await this.gate.closed;
      else if (this.unconfirmed.count >= this.window || this.unconfirmed.bytes >= this.windowBytes) {
        await this.sleep();
      } else if (this.frames.unflushedBytes > 8 * WRITE_BATCH_BYTES) await this.frames.flushAndWait();
      else break;
    }
    // a stall is counted from the first message waiting for a confirm, not from an idle input
    if (this.unconfirmed.count === 0) this.progressAt = Date.now();
    const entry = this.unconfirmed.next(msg);
    this.frames.write(msg);
    this.counts.published++;
    if (this.o.confirm) this.unconfirmed.track(entry);
  }

  /** Waits until every published message is confirmed, nacked or returned (reconnecting if need be). */
  async drain(): Promise<void> {
    while (true) {
      this.throwIfFatal();
      if (this.lost) {
        await this.reconnect();
        continue;
      }
      this.frames.flush();
      if (!this.o.confirm) {
        await this.frames.lastWrite;
        // a channel's close-ok comes after every basic.return it sent: then all returns are counted
        await this.link?.channel.close().catch(() => {});
        this.throwIfFatal();
        return;
      }
      if (this.unconfirmed.count === 0) return;
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
    const failed = undelivered(this.counts, this.returns.samples, this.nackedSamples);
    if (failed) throw failed;
  }

  /**
   * Stops waiting: whatever publish(), drain() or a reconnect waits on ends with `err` (used when
   * confirms do not come within --stop-timeout after a stop signal).
   */
  abandon(err: KmqError): void {
    this.fatal ??= err;
    this.gate.open();
    this.wakeUp();
  }

  /** Where publishing stands, for a failure's message: confirmed, and the first unconfirmed. */
  progress(): string {
    const first = this.firstUnconfirmed();
    return `${this.delivered} message(s) confirmed` +
      (first ? `; ${this.unconfirmed.count} unconfirmed, the first of them ${first.origin}` : "");
  }

  /** The connection to the broker published to, while there is one. */
  get connection(): AMQPClient | undefined {
    return this.link?.client;
  }

  /** The failure that ended publishing, if any (its message already says what was confirmed). */
  get failure(): KmqError | undefined {
    return this.fatal;
  }

  /** Messages confirmed as delivered (a returned message is confirmed too, but not delivered). */
  get delivered(): number {
    return this.counts.confirmed - this.counts.returned;
  }

  /** The earliest message still waiting for its confirm, if any. */
  firstUnconfirmed(): OutMessage | undefined {
    return this.unconfirmed.first();
  }

  private throwIfFatal(): void {
    if (this.fatal) throw this.fatal;
  }

  private sleep(): Promise<void> {
    this.frames.flush();
    return new Promise((resolve) => (this.wake = resolve));
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private onConfirm(tag: number, multiple: boolean, nack: boolean): void {
    this.progressAt = Date.now();
    this.lossesSinceProgress = 0;
    this.unconfirmed.confirm(tag, multiple, (e: InFlight) => {
      e.msg.settled?.(!nack && !e.returned);
      if (nack) {
        this.counts.nacked++;
        if (this.nackedSamples.length < 5) this.nackedSamples.push(e.msg.origin);
      } else {
        this.counts.confirmed++;
      }
    });
    this.wakeUp();
  }

  private onReturn(returned: AMQPMessage): void {
    this.counts.returned++;
    const msg = this.unconfirmed.markReturned(
      returned.exchange,
      returned.routingKey,
      returned.body ?? new Uint8Array(0),
    );
    const sample = `${msg ? msg.origin + " " : ""}with routing key '${returned.routingKey}'`;
    this.returns.add(this.counts.returned, sample);
  }

  private onChannelClosed(reason: string): void {
    // the client reports a closed connection here too; ondisconnect handles that
    if (!/^channel \d+ closed/.test(reason) || this.closing) return;
    if (!this.fatal) {
      const waiting = this.unconfirmed.unconfirmed().map((e) => e.msg);
      const input = inputAtFault(reason, waiting, this.delivered, this.progress());
      const refused = classifyError(
        new Error(reason.replace(/^channel \d+ closed: /, "")),
        failedStep(reason, waiting, this.o.topology.exchange.name),
      );
      this.fatal = input ?? new KmqError(refused.exitCode, `${refused.message}; ${this.progress()}`);
    }
    this.wakeUp();
  }

  private onLost(err: unknown): void {
    if (this.closing || this.lost) return;
    const classified = classifyError(err, "connection lost");
    this.fatal ??= this.finalLoss(classified);
    if (!this.fatal) {
      this.lost = err;
      this.frames.target = undefined; // nothing more goes to the dead socket
      // said now, not when the next message comes: stdin may be quiet for a long time
      const said = classified.message.replace(/; check that.*$/, "");
      this.o.log.warn(`${said}; reconnecting for up to ${this.o.retryTimeout} s`);
    }
    // a publish waiting for the broker to unblock must see the loss (or the failure) now
    this.gate.open();
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
    if (this.unconfirmed.count === 0) return undefined; // nothing was waiting: no stall
    this.lossesSinceProgress++;
    const stalled = (Date.now() - this.progressAt) / 1000;
    if (this.lossesSinceProgress < 2 || stalled < this.o.retryTimeout) return undefined;
    return stalledLoss(classified, this.lossesSinceProgress, stalled, this.o.retryTimeout, this.progress());
  }

  /** Reconnects with backoff until --retry-timeout runs out, then sends every unconfirmed message again. */
  private async reconnect(): Promise<void> {
    if (this.link) await closeQuietly(this.link.client);
    this.link = undefined;
    this.frames.detach();
    this.link = await this.connectWithin(this.o.retryTimeout * 1000);
    this.lost = undefined;
    const pending = this.unconfirmed.reset();
    for (const msg of pending) {
      const again = this.unconfirmed.next(msg);
      this.frames.write(msg);
      this.unconfirmed.track(again);
    }
    this.counts.republished += pending.length;
    this.o.log.warn(`reconnected; sent ${pending.length} unconfirmed message(s) again`);
  }

  /** A new link, tried with backoff for `ms`; a refusal (not the network) is final at once. */
  private async connectWithin(ms: number): Promise<Link> {
    const deadline = Date.now() + ms;
    let delay = 100;
    let last: unknown = this.lost;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
      this.throwIfFatal(); // abandoned while waiting
      delay = Math.min(delay * 2, 5000);
      try {
        return await this.connectOnce();
      } catch (err) {
        last = err;
        if (err instanceof KmqError && err.exitCode !== ExitCode.unreachable) {
          this.fatal = new KmqError(err.exitCode, `${err.message}; ${this.progress()}`);
          throw this.fatal;
        }
      }
    }
    const first = this.firstUnconfirmed();
    const why = classifyError(last, "last attempt").message.replace(/; check that.*$/, "");
    this.fatal = new DeliveryError(
      `gave up reconnecting after ${this.o.retryTimeout} s (${why}): ` +
        `${this.delivered} of ${this.counts.published} messages confirmed, ${this.unconfirmed.count} unconfirmed` +
        (first ? ` starting at ${first.origin}` : ""),
    );
    throw this.fatal;
  }
}

/**
 * After a stop signal, the publisher's confirms get `seconds` to come (a memory alarm or a full
 * queue that rejects may hold them back for ever); then publishing is abandoned: exit 7 naming them.
 */
export function boundStop(
  publisher: Publisher,
  seconds: number,
  stop: AbortSignal | undefined,
): { dispose(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onStop = () => {
    timer = setTimeout(() => {
      const why = `stopped by ${String(stop?.reason)}: no confirm within --stop-timeout ${seconds} s`;
      publisher.abandon(new DeliveryError(`${why}; ${publisher.progress()}`));
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

/** A gate publishing waits at while closed (the broker sent connection.blocked). */
class Gate {
  /** Resolves when the gate opens; undefined while it is open. */
  closed?: Promise<void>;
  private opener?: () => void;

  close(): void {
    this.closed ??= new Promise((resolve) => (this.opener = resolve));
  }

  open(): void {
    this.closed = undefined;
    this.opener?.();
  }
}
