/**
 * One producer of `kmq bench`: its own connection, kmq's Publisher (batched frames, a confirm
 * window, resends after a reconnect), and a clock. At a fixed `--rate` each message is stamped
 * with when it was due, not when it went out, so a stall shows in the latency of every message
 * it held back (no coordinated omission).
 */
import type { OutMessage } from "../amqp/confirm-window.ts";
import { DEFAULT_EXCHANGE_ONLY } from "../amqp/declarations.ts";
import { Publisher } from "../amqp/publisher.ts";
import type { Log } from "../term/log.ts";
import { sleepUntil } from "../term/progress.ts";
import { type BenchOptions, DUE_HEADER, RUN_HEADER, STAMP_BYTES } from "./bench-options.ts";
import type { Latency } from "./latency.ts";

/** When a producer stops publishing: the duration's end, its count, or the run being stopped. */
export interface ProducerLimits {
  /** A performance.now() time; Infinity without --duration. */
  until: number;
  stop: AbortSignal;
}

export class BenchProducer {
  private readonly publisher: Publisher;
  private readonly origin: string;
  private readonly stamp = new Uint8Array(STAMP_BYTES);
  private readonly stampView = new DataView(this.stamp.buffer);
  private readonly reused: Uint8Array;

  constructor(
    private readonly o: BenchOptions,
    index: number,
    readonly queue: string,
    private readonly runTag: number,
    private readonly confirmLatency: Latency[],
    log: Log,
  ) {
    this.origin = `producer ${index + 1}`;
    this.stampView.setUint32(8, runTag);
    this.reused = new Uint8Array(Math.max(o.size, STAMP_BYTES));
    this.publisher = new Publisher({
      broker: o.broker,
      topology: DEFAULT_EXCHANGE_ONLY,
      mandatory: true,
      confirm: o.confirm > 0,
      window: Math.max(1, o.confirm),
      windowBytes: Number.MAX_SAFE_INTEGER,
      retryTimeout: 5,
      log,
      name: "kmq bench",
    });
  }

  get counts() {
    return this.publisher.counts;
  }

  open(): Promise<void> {
    return this.publisher.open();
  }

  /** Publishes until a limit is reached; the messages' confirms may still be on their way. */
  async run(limits: ProducerLimits): Promise<void> {
    const started = performance.now();
    const interval = this.o.rate > 0 ? 1000 / this.o.rate : 0;
    const properties = { deliveryMode: this.o.persistent ? 2 : 1 };
    for (let i = 0; this.o.count === undefined || i < this.o.count; i++) {
      if (limits.stop.aborted) return;
      let due = performance.now();
      if (interval > 0) {
        const scheduled = started + i * interval;
        if (scheduled >= limits.until) return;
        if (scheduled - due > 1) await sleepUntil(scheduled, limits.stop);
        if (limits.stop.aborted) return;
        due = scheduled;
      } else if (due >= limits.until) return;
      await this.publisher.publish(this.message(due, properties));
      // a loop that never waits starves the timers and signals and fills the socket in bursts
      if ((i & 255) === 255) await new Promise((r) => setImmediate(r));
    }
  }

  /** Waits for the confirms still due, at most `ms`; true when all came. */
  async drain(ms: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    try {
      return await Promise.race([this.publisher.drain().then(() => true), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    return this.publisher.close();
  }

  private message(due: number, properties: { deliveryMode: number }): OutMessage {
    let body: Uint8Array;
    let props: OutMessage["properties"] = properties;
    if (this.o.body) {
      body = this.o.body;
      props = { ...properties, headers: { [DUE_HEADER]: due, [RUN_HEADER]: this.runTag } };
    } else {
      this.stampView.setFloat64(0, due);
      // without confirms nothing is kept for a resend and the frame batcher copies the body at
      // once, so one buffer serves every message
      body = this.o.confirm > 0 ? new Uint8Array(Math.max(this.o.size, STAMP_BYTES)) : this.reused;
      body.set(this.stamp);
    }
    const confirmLatency = this.confirmLatency;
    return {
      exchange: "",
      routingKey: this.queue,
      properties: props,
      body,
      origin: this.origin,
      settled: this.o.confirm > 0
        ? (delivered) => {
          if (!delivered) return;
          const ms = performance.now() - due;
          for (const h of confirmLatency) h.record(ms);
        }
        : undefined,
    };
  }
}
