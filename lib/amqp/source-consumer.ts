/**
 * The consumer of one queue for `kmq consume` and `kmq move`, with --filter applied at delivery:
 * a matching message goes on to `deliver`; one that does not is acked (a copy: a tap's queue, a
 * stream, or --ack-unmatched) or held unacked, to go back to the queue when the channel closes.
 */
import type { AMQPChannel, AMQPConsumer, AMQPMessage } from "@cloudamqp/amqp-client";
import type { Sieve } from "../messages/filter.ts";

export interface SourceOptions {
  /** The consumer's window (its prefetch): the broker counts unacked messages per consumer. */
  window: number;
  /** The broker acks on delivery (nothing to ack or hold). */
  noAck?: boolean;
  /** basic.consume's arguments. */
  args?: Record<string, unknown>;
  sieve?: Sieve;
  /** Each message to handle (all of them without --filter). */
  deliver(msg: AMQPMessage): void;
  /**
   * The consumer ended without kmq asking: the broker cancelled it (`err` says why, if it did), or a
   * filter that is not a condition stopped it.
   */
  ended(err?: unknown): void;
}

export class SourceConsumer {
  private consumer?: AMQPConsumer;
  /** Non-matching messages the current consumer holds unacked. */
  private heldHere = 0;
  private cancelled = false;
  /** The subscription (or renewal) under way. */
  private starting?: Promise<void>;
  private window: number;

  constructor(
    private readonly channel: AMQPChannel,
    private readonly queue: string,
    private readonly o: SourceOptions,
  ) {
    this.window = o.window;
  }

  /** Starts consuming; resolves once the broker said consume-ok. */
  start(): Promise<void> {
    this.starting = this.subscribe();
    return this.starting;
  }

  private async subscribe(): Promise<void> {
    this.heldHere = 0;
    const consumer = await this.channel.basicConsume(
      this.queue,
      { noAck: this.o.noAck ?? false, args: this.o.args },
      (msg) => {
        if (this.o.sieve && !this.admit(msg, this.o.sieve)) return;
        this.o.deliver(msg);
      },
    );
    this.consumer = consumer;
    consumer.wait().then(
      () => this.consumer === consumer && this.o.ended(), // not when kmq cancelled or renewed it
      (err) => this.consumer === consumer && this.o.ended(err),
    );
  }

  /**
   * Replaces the consumer with one whose window is `window` (RabbitMQ applies a per-consumer
   * prefetch to consumers started after it). Deliveries sent before the old consumer's cancel-ok
   * still reach `deliver`; what it holds unacked stays so, and acking it no longer opens the window.
   */
  async resize(window: number): Promise<void> {
    await this.starting?.catch(() => {});
    const old = this.consumer;
    this.consumer = undefined;
    await old?.cancel();
    await this.channel.basicQos(window);
    this.window = window;
    if (this.cancelled) return;
    this.starting = this.subscribe();
    await this.starting;
  }

  /** Cancels the consumer: no more deliveries; what is unacked stays so until acked or closed. */
  async cancel(): Promise<void> {
    this.cancelled = true;
    await this.starting?.catch(() => {});
    const consumer = this.consumer;
    this.consumer = undefined;
    await consumer?.cancel().catch(() => {});
  }

  private admit(msg: AMQPMessage, sieve: Sieve): boolean {
    let match: boolean;
    try {
      match = sieve.filter.matches(msg);
    } catch (err) {
      // a filter that is not a condition: stop; this message stays in the queue
      this.o.ended(err);
      return false;
    }
    if (match) return true;
    sieve.unmatched++;
    if (!sieve.hold) {
      if (!this.o.noAck) msg.ack().catch(() => {});
      return false;
    }
    this.hold();
    return false;
  }

  /**
   * A delivered message stays unacked on the channel, to go back to the queue when it closes: once
   * the current consumer's window is full of such messages, a new consumer takes over.
   */
  hold(): void {
    if (++this.heldHere >= this.window) this.renew();
  }

  /**
   * The window is full of held messages, so the broker sends this consumer no more: a new consumer
   * gets a window of its own while the held ones stay unacked on the channel. Nothing is in flight
   * at this point, so nothing is missed in between.
   */
  private renew(): void {
    // deliveries can come before basic.consume's reply has been handed back: wait for that first
    const started = this.starting ?? Promise.resolve();
    this.starting = started.then(async () => {
      const old = this.consumer;
      this.consumer = undefined;
      await old?.cancel();
      if (!this.cancelled) await this.subscribe();
    });
    this.starting.catch((err) => this.o.ended(err));
  }
}
