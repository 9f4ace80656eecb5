import type { AMQPChannel, AMQPMessage, AMQPProperties } from "@cloudamqp/amqp-client";
import { classifyError, DeliveryError, InputError, type KmqError } from "./errors.ts";

/** How many publishes may await their confirm at once; bounds memory and keeps the pipe full. */
export const DEFAULT_CONFIRM_WINDOW = 1000;

export interface PublisherOptions {
  exchange: string;
  routingKey: string;
  properties: AMQPProperties;
  mandatory: boolean;
  /** Wait for publisher confirms (the default) or only for the socket write. */
  confirm: boolean;
  window?: number;
}

/** What happened to the messages handed to {@link Publisher.publish}. */
export interface PublishCounts {
  published: number;
  confirmed: number;
  returned: number;
  nacked: number;
  /** Published but neither confirmed nor nacked because the channel or connection closed. */
  unconfirmed: number;
}

/**
 * Publishes on one channel with a bounded window of unconfirmed messages in flight, never one at
 * a time, and keeps count of confirms, nacks and returns (mandatory messages no queue took).
 */
export class Publisher {
  readonly counts: PublishCounts = { published: 0, confirmed: 0, returned: 0, nacked: 0, unconfirmed: 0 };
  /** Routing keys (and the broker's reason) of the first returned messages, for the report. */
  readonly returnedSamples: string[] = [];
  /** Why the channel closed under us, if it did. */
  failure?: KmqError;
  private pending = 0;
  private readonly window: number;
  private wake?: () => void;

  constructor(private readonly channel: AMQPChannel, private readonly options: PublisherOptions) {
    this.window = options.window ?? DEFAULT_CONFIRM_WINDOW;
    channel.onReturn = (msg: AMQPMessage) => {
      this.counts.returned++;
      if (this.returnedSamples.length < 5) {
        this.returnedSamples.push(`'${msg.routingKey}' (${msg.replyText ?? "returned"})`);
      }
    };
  }

  /** Resolves once the message is on its way and the window has room for the next one. */
  async publish(body: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    while (this.pending >= this.window) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      if (this.failure) throw this.failure;
    }
    this.pending++;
    this.counts.published++;
    const { exchange, routingKey, properties, mandatory, confirm } = this.options;
    const settled = this.channel.basicPublish(exchange, routingKey, body, properties, mandatory).then(
      () => {
        if (confirm) this.counts.confirmed++;
      },
      (err: unknown) => this.onFailure(err),
    ).finally(() => {
      this.pending--;
      if (this.wake && this.pending < this.window) {
        const wake = this.wake;
        this.wake = undefined;
        wake();
      }
    });
    if (!confirm) await settled; // without confirms, the write itself is the back-pressure
  }

  /** Waits until every published message is confirmed, nacked or known lost. */
  async drain(): Promise<void> {
    while (this.pending > 0) await new Promise<void>((resolve) => (this.wake = resolve));
  }

  private onFailure(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (message === "Message rejected") {
      this.counts.nacked++;
      return;
    }
    this.counts.unconfirmed++;
    if (err instanceof RangeError) {
      this.failure ??= new InputError(
        "the message's properties and headers do not fit in one AMQP frame: send fewer or smaller headers",
      );
      return;
    }
    this.failure ??= classifyError(err, `publishing to exchange '${this.options.exchange}'`);
  }

  /**
   * Throws when any message was not delivered: exit 6/other for a channel the broker closed,
   * exit 7 for nacks, returns and messages left unconfirmed.
   */
  check(): void {
    const c = this.counts;
    const lost = c.nacked + c.returned + c.unconfirmed;
    if (this.failure && c.unconfirmed === c.published) throw this.failure;
    if (lost === 0 && !this.failure) return;
    const parts: string[] = [];
    if (c.returned) {
      parts.push(
        `${c.returned} returned as unroutable (routing key ${this.returnedSamples.join(", ")}): ` +
          "no queue is bound for it; bind one or pass --no-mandatory",
      );
    }
    if (c.nacked) parts.push(`${c.nacked} nacked by the broker`);
    if (c.unconfirmed) {
      parts.push(
        `${c.unconfirmed} unconfirmed when the channel closed (${this.failure?.message ?? "closed"})`,
      );
    }
    throw new DeliveryError(`${lost} of ${c.published} messages not delivered: ${parts.join("; ")}`);
  }
}
