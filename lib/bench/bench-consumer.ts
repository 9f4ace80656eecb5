/**
 * One consumer of `kmq bench`: its own connection and channel, a prefetch window, acks one by
 * one or `--multi-ack` at a time. A message counts as received once it is handled — after
 * `--consumer-latency` of pretend work and within `--consumer-rate` — and its end-to-end latency
 * is measured then, from when it was due to be published.
 */
import type { AMQPChannel, AMQPClient, AMQPConsumer, AMQPMessage } from "@cloudamqp/amqp-client";
import { closeQuietly, connect } from "../amqp/connection.ts";
import { attempt } from "../amqp/entities.ts";
import { TypedField } from "../messages/fields.ts";
import type { Log } from "../term/log.ts";
import { sleepUntil } from "../term/progress.ts";
import { type BenchOptions, DUE_HEADER, RUN_HEADER, STAMP_BYTES } from "./bench-options.ts";
import type { Latency } from "./latency.ts";

/** Acks held back for `--multi-ack` go out after this long without a delivery. */
const ACK_FLUSH_MS = 100;

export class BenchConsumer {
  received = 0;
  /** Messages not stamped by this run (in a --predeclared queue): counted, not timed. */
  foreign = 0;
  /** performance.now() of the last message handled. */
  lastAt = 0;
  private client?: AMQPClient;
  private channel?: AMQPChannel;
  private consumer?: AMQPConsumer;
  private unacked = 0;
  private lastTag = 0;
  private flushTimer?: ReturnType<typeof setTimeout>;
  private readonly waiting: AMQPMessage[] = [];
  private pumping = false;
  private handledSince = 0;
  private paceStart = 0;
  private readonly paced: boolean;
  private closing = false;

  constructor(
    private readonly o: BenchOptions,
    readonly queue: string,
    private readonly runTag: number,
    private readonly latency: Latency[],
    private readonly stop: AbortSignal,
    private readonly log: Log,
  ) {
    this.paced = o.consumerLatency > 0 || o.consumerRate > 0;
  }

  async open(): Promise<void> {
    this.client = await connect({ broker: this.o.broker, name: "kmq bench", log: this.log });
    this.client.ondisconnect = (err?: Error) => {
      if (!this.closing) {
        this.log.warn(`a consumer of '${this.queue}' lost its connection: ${err?.message ?? "closed"}`);
      }
    };
    const channel = await this.client.channel();
    this.channel = channel;
    await attempt(
      `setting the prefetch of a consumer of '${this.queue}'`,
      () => channel.basicQos(this.o.prefetch),
    );
    // a stream is read from where it ends now: what this run publishes
    const args = this.o.queueType === "stream" ? { "x-stream-offset": "next" } : {};
    this.consumer = await attempt(
      `consuming from queue '${this.queue}'`,
      () => channel.basicConsume(this.queue, { noAck: false, args }, (msg) => this.onMessage(msg)),
    );
  }

  /**
   * Cancels the consumer, acks what was handled (deliveries until the cancel's answer included:
   * nothing goes back, which a quorum queue would count as a delivery) and closes the connection.
   * Messages still waiting for --consumer-rate or --consumer-latency go back to the queue.
   */
  async close(): Promise<void> {
    this.closing = true;
    if (this.consumer && this.channel && !this.channel.closed) {
      await this.consumer.cancel().catch(() => {});
    }
    clearTimeout(this.flushTimer);
    this.flushAcks();
    if (this.client) await closeQuietly(this.client);
  }

  private onMessage(msg: AMQPMessage): void {
    if (!this.paced) return this.handle(msg);
    this.waiting.push(msg);
    if (!this.pumping) void this.pump();
  }

  /** Handles the waiting messages one at a time, with the pretend work and within the rate. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.waiting.length > 0 && !this.stop.aborted) {
        if (this.o.consumerRate > 0) {
          if (this.handledSince === 0) this.paceStart = performance.now();
          const due = this.paceStart + (this.handledSince * 1000) / this.o.consumerRate;
          if (due > performance.now()) await sleepUntil(due, this.stop);
        }
        if (this.o.consumerLatency > 0) {
          await sleepUntil(performance.now() + this.o.consumerLatency, this.stop);
        }
        if (this.stop.aborted) break;
        this.handledSince++;
        this.handle(this.waiting.shift()!);
      }
    } finally {
      this.pumping = false;
    }
  }

  private handle(msg: AMQPMessage): void {
    const now = performance.now();
    const due = this.dueOf(msg);
    if (due === undefined) this.foreign++;
    else for (const h of this.latency) h.record(now - due);
    this.received++;
    this.lastAt = now;
    this.unacked++;
    this.lastTag = msg.deliveryTag;
    if (this.unacked >= this.o.multiAck) this.flushAcks();
    else if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => this.flushAcks(), ACK_FLUSH_MS);
    }
  }

  private flushAcks(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.unacked === 0 || !this.channel || this.channel.closed) return;
    this.unacked = 0;
    // a lost channel gives the unacked back to the queue: nothing to do about it here
    this.channel.basicAck(this.lastTag, this.o.multiAck > 1).catch(() => {});
  }

  /** When this run's producer meant to publish `msg` (performance.now() ms); undefined if not ours. */
  private dueOf(msg: AMQPMessage): number | undefined {
    if (this.o.body) {
      const headers = msg.properties.headers ?? {};
      const run = numeric(headers[RUN_HEADER]);
      return run === this.runTag ? numeric(headers[DUE_HEADER]) : undefined;
    }
    const body = msg.body;
    if (!body || body.length < STAMP_BYTES) return undefined;
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    return view.getUint32(8) === this.runTag ? view.getFloat64(0) : undefined;
  }
}

function numeric(value: unknown): number | undefined {
  const v = value instanceof TypedField ? value.value : value;
  return typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : undefined;
}
