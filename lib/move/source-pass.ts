/**
 * One pass of a move over one source connection: consume, hand each message to the publisher,
 * ack it in the source once the target confirmed it, and decide when the source is done — at -n,
 * after --idle-timeout, or when it is found empty twice a second apart with nothing delivered
 * between (a quorum queue electing a leader can report 0 once).
 */
import type { AMQPChannel, AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";
import { SourceConsumer } from "../amqp/source-consumer.ts";
import type { Publisher } from "../amqp/publisher.ts";
import { republished } from "../amqp/republish.ts";
import { askReady, readyCount } from "../amqp/ready-count.ts";
import type { Sieve } from "../messages/filter.ts";
import { classifyError, DeliveryError, ExitCode, KmqError } from "../term/errors.ts";
import { pace } from "../term/progress.ts";
import type { Moved, MoveIo, MoveOptions } from "./move-options.ts";

export const PREFETCH = 500;
/** How long without a delivery before asking whether the source is empty. */
const QUIET_MS = 500;
/** The second look at an empty source comes this long after the first, with nothing delivered between. */
const CONFIRM_EMPTY_MS = 1_000;

/** The source connection dropped: reconnect and go on (its unacked messages come again). */
export class SourceLost extends Error {}

/** The move found the source empty, yet messages were ready in it once the consumer was gone. */
export class SourceNotEmpty extends Error {
  constructor(readonly left: number) {
    super(`${left} message(s) ready`);
  }
}

/** What every pass of one move shares. */
export interface MoveRun {
  o: MoveOptions;
  io: MoveIo;
  publisher: Publisher;
  moved: Moved;
  sieve?: Sieve;
  /** Through the default exchange with each message's own key, a key naming the source loops back. */
  loopsBack: boolean;
  /** The source is a quorum queue (whose count may be a silent leader's stand-in: ready-count.ts). */
  sourceQuorum: boolean;
}

export class SourcePass {
  private lost?: Error;
  private failure?: KmqError;
  private foundEmpty = false;
  /** The route said the pass ends here (a redrive came round to what it sent back). */
  private atLast = false;
  private wake = () => {};
  private readonly inbox: AMQPMessage[] = [];
  private lastDelivery = Date.now();
  /** Since when the source's count could not be read (see readyWhileConsuming). */
  private silentSince?: number;
  private ch?: AMQPChannel;
  private source?: SourceConsumer;

  constructor(private readonly client: AMQPClient, private readonly run: MoveRun) {
    client.ondisconnect = (err?: Error) => {
      this.lost = err ?? new Error("connection closed");
      this.wake();
    };
  }

  /** Moves until the pass ends; throws SourceLost, SourceNotEmpty or what stopped the move. */
  async go(): Promise<void> {
    const ch = await this.open();
    // a message the target refused goes back to the source and ends the move: taking it again
    // would only be refused again (a full queue, no binding, a deleted queue), for ever
    while (this.going()) {
      if (this.lost) throw new SourceLost(this.lost.message);
      const msg = this.inbox.shift();
      if (!msg) {
        if (await this.ended(ch)) break;
        continue;
      }
      if (this.run.loopsBack && msg.routingKey === this.run.o.from) {
        await this.refuseLoop(msg);
        break;
      }
      await this.forward(msg);
    }
    await this.finish(ch);
  }

  private async open(): Promise<AMQPChannel> {
    const { o, moved, sieve } = this.run;
    const ch = this.ch = await this.client.channel();
    try {
      await ch.queueDeclare(o.from, { passive: true });
    } catch (err) {
      throw new KmqError(ExitCode.brokerRefused, `queue '${o.from}' does not exist: nothing to move`, {
        cause: classifyError(err, "checking the source"),
      });
    }
    // held (non-matching) messages fill the window: -n must not shrink it to a renewal per message
    const window = o.count === undefined || sieve
      ? PREFETCH
      : Math.max(1, Math.min(PREFETCH, o.count - moved.counted.count));
    await ch.prefetch(window);
    this.source = new SourceConsumer(ch, o.from, {
      window,
      sieve,
      deliver: (msg) => {
        this.lastDelivery = Date.now();
        this.inbox.push(msg);
        this.wake();
      },
      ended: (err) => {
        if (err instanceof KmqError) this.failure ??= err; // a filter that is not a condition
        else this.lost ??= err instanceof Error ? err : new Error("the broker cancelled the consumer");
        this.wake();
      },
    });
    await this.source.start();
    return ch;
  }

  private going(): boolean {
    const { o, io, publisher, moved } = this.run;
    return !io.stop.aborted && !this.atLast && (o.count === undefined || moved.counted.count < o.count) &&
      !publisher.failure && !this.failure && moved.failed === 0;
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wake = resolve;
      setTimeout(resolve, ms);
    });
  }

  /** Nothing in hand: whether the pass is over (idle for --idle-timeout, or the source empty twice). */
  private async ended(ch: AMQPChannel): Promise<boolean> {
    const { o, io, publisher } = this.run;
    await this.pause(QUIET_MS);
    if (this.inbox.length > 0 || this.lost) return false;
    // nothing comes while the prefetch window is full of messages awaiting the target's
    // confirms: wait for them (reconnecting the target if it dropped), which acks and frees it
    await publisher.drain();
    if (this.inbox.length > 0 || this.lost) return false;
    if (o.idleTimeout !== undefined) return Date.now() - this.lastDelivery >= o.idleTimeout * 1000;
    const first = await this.readyWhileConsuming(ch);
    if (first === undefined) return this.sourceSilent();
    if (first > 0) return false;
    // empty once: look again a moment later, with nothing delivered in between
    const mark = this.lastDelivery;
    await this.pause(CONFIRM_EMPTY_MS);
    if (this.inbox.length > 0 || this.lost || this.lastDelivery !== mark || io.stop.aborted) return false;
    const second = await this.readyWhileConsuming(ch);
    if (second === undefined) return this.sourceSilent();
    this.foundEmpty = second === 0;
    return this.foundEmpty;
  }

  /** The source's ready count while this pass consumes it, or undefined for a silent leader's stand-in. */
  private async readyWhileConsuming(ch: AMQPChannel): Promise<number | undefined> {
    const ready = await askReady(ch, this.run.o.from, { consuming: true });
    if (ready !== undefined) this.silentSince = undefined;
    return ready;
  }

  /** The source's count cannot be read: wait for it, up to --retry-timeout; then end with exit 7. */
  private sourceSilent(): boolean {
    const { o, io } = this.run;
    if (this.silentSince === undefined) {
      this.silentSince = Date.now();
      io.log.warn(
        `queue '${o.from}' does not answer for its count (a quorum queue whose leader is unreachable or ` +
          `being elected): waiting up to ${o.retryTimeout} s (--retry-timeout)`,
      );
      return false;
    }
    if (Date.now() - this.silentSince < o.retryTimeout * 1000) return false;
    this.failure = new DeliveryError(
      `queue '${o.from}' has not answered for its count for ${o.retryTimeout} s (--retry-timeout; its leader is ` +
        `unreachable): the move stopped, and what it did not move stays in '${o.from}'`,
    );
    return true;
  }

  private async refuseLoop(msg: AMQPMessage): Promise<void> {
    const { o, moved } = this.run;
    await msg.nack(true).catch(() => {});
    this.failure = new DeliveryError(
      `message ${
        moved.taken + 1
      } has the routing key '${o.from}': through the default exchange it would go ` +
        `back into the source, so the move stopped there (it stays in '${o.from}'); give --routing-key or --to`,
    );
  }

  /** Publishes one message; its settlement acks it in the source, or puts it back. */
  private async forward(msg: AMQPMessage): Promise<void> {
    const { o, publisher, moved } = this.run;
    const way = o.route ? await o.route(msg) : undefined;
    if (way && !way.send) {
      this.source?.hold(); // it stays in the source, unacked until the channel closes
      if (way.last) this.atLast = true;
      return;
    }
    const back = way?.back === true;
    if (!back) {
      moved.taken++;
      if (o.count !== undefined) moved.counted.take(msg);
      if (o.rate !== undefined) await pace(moved.taken - 1, o.rate, moved.started);
    }
    const origin = back ? "a message kept in the source" : `message ${moved.taken}`;
    await publisher.publish({
      exchange: way?.exchange ?? o.toExchange ?? "",
      routingKey: way?.routingKey ?? o.to ?? o.routingKey ?? msg.routingKey,
      properties: republished(
        msg.properties,
        way ? { ...o.setHeaders, ...way.headers } : o.setHeaders,
        o.dropHeaders,
      ),
      body: msg.body ?? new Uint8Array(0),
      origin,
      settled: (delivered) => {
        if (delivered) {
          if (back) moved.kept++;
          else moved.confirmed++;
          way?.confirmed?.();
          msg.ack().catch(() => {}); // a lost source connection redelivers it: a duplicate, not a loss
          return;
        }
        moved.failed++;
        const id = msg.properties.messageId ? ` (id '${msg.properties.messageId}')` : "";
        moved.firstRefused ??= `${origin}${id}`;
        msg.nack(true).catch(() => {});
      },
    });
  }

  /** Stops consuming, puts back what was never published, waits for every ack, says how it ended. */
  private async finish(ch: AMQPChannel): Promise<void> {
    const { o, publisher, moved } = this.run;
    // a quorum queue whose leader is gone answers a cancel only once it is back: what is not
    // cancelled in time goes back to the queue when the connection closes
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, o.stopTimeout * 1000)));
    await Promise.race([this.source?.cancel(), late]);
    clearTimeout(timer);
    for (const rest of this.inbox) await rest.nack(true).catch(() => {}); // prefetched, never published
    await publisher.drain(); // every ack is sent before the source connection closes
    if (this.failure) throw this.failure;
    if (this.lost) throw new SourceLost(this.lost.message);
    if (this.foundEmpty && moved.failed === 0) {
      // the last word on "empty" comes after the consumer is gone and every ack is in
      const left = await readyCount(ch, o.from, { quorum: this.run.sourceQuorum }, o.retryTimeout * 1000)
        .catch((err) => {
          throw err instanceof KmqError
            ? new DeliveryError(`${err.message}; what was not moved stays in it`)
            : err;
        });
      if (left > 0) throw new SourceNotEmpty(left);
    }
    if (moved.failed > 0) {
      const why = publisher.counts.nacked > 0 ? "nacked by the broker" : "returned as unroutable";
      throw new DeliveryError(
        `the target refused ${moved.failed} message(s) (the first, ${moved.firstRefused}, ${why}): ` +
          `the move stopped and they stay in queue '${o.from}'`,
      );
    }
  }
}
