/**
 * Deliveries handed from a consumer's callback (which cannot wait) to an async loop (which can):
 * past `maxPending` waiting deliveries the connection's socket is paused, so TCP holds the rest
 * at the broker and kmq's memory stays bounded however fast the broker sends.
 */
import type { AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";

/** Body bytes waiting past which the socket is paused too (large messages). */
const MAX_PENDING_BYTES = 4 * 1024 * 1024;

export class DeliveryPump {
  private pending: AMQPMessage[] = [];
  private head = 0;
  private wake?: () => void;
  private paused = false;
  private released = false;
  /** Body bytes of the deliveries waiting. */
  private bytes = 0;
  /** When the latest delivery came. */
  lastAt = Date.now();
  /** Deliveries taken so far. */
  received = 0;

  constructor(private readonly client: AMQPClient, private readonly maxPending = 2000) {}

  /** The consumer's callback. */
  readonly push = (msg: AMQPMessage): void => {
    // after release nobody reads: what still comes goes back with the channel
    if (this.released) return;
    this.pending.push(msg);
    this.bytes += msg.bodySize;
    this.received++;
    this.lastAt = Date.now();
    if (!this.paused && (this.waiting >= this.maxPending || this.bytes >= MAX_PENDING_BYTES)) {
      this.paused = true;
      this.client.socket?.pause();
    }
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  };

  /** Wakes a reader waiting in next() (the feed ended). */
  wakeReader(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  get waiting(): number {
    return this.pending.length - this.head;
  }

  /** The next delivery, or undefined when none came within `ms` (or `stop` aborted). */
  async next(ms: number, stop?: AbortSignal): Promise<AMQPMessage | undefined> {
    if (this.waiting === 0 && !stop?.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          stop?.removeEventListener("abort", done);
          this.wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, ms);
        stop?.addEventListener("abort", done, { once: true });
        this.wake = done;
      });
    }
    if (this.waiting === 0) return undefined;
    const msg = this.pending[this.head]!;
    this.bytes -= msg.bodySize;
    this.pending[this.head++] = undefined as unknown as AMQPMessage;
    if (this.head > 4096 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    if (this.paused && this.waiting <= this.maxPending / 2 && this.bytes <= MAX_PENDING_BYTES / 2) {
      this.paused = false;
      this.client.socket?.resume();
    }
    return msg;
  }

  /**
   * Stops holding deliveries and lets the socket read again for good: before the channel is
   * closed, its close-ok must come in behind whatever the broker still sends.
   */
  release(): void {
    this.released = true;
    this.pending = [];
    this.head = 0;
    this.bytes = 0;
    if (this.paused) {
      this.paused = false;
      this.client.socket?.resume();
    }
  }
}
