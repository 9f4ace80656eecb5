/**
 * Exactly the first `count` messages of a quorum queue, taken with basic.get and never returned.
 * A consumer would run ahead by its prefetch window, and what a quorum queue gets back — on
 * cancel or close — counts toward its delivery limit and comes back out of order; basic.get
 * takes no more than asked. It is slower (the broker answers one get at a time, about 2,000 a
 * second here), which is the price of leaving every delivery count as it was.
 */
import type { AMQPChannel, AMQPMessage } from "@cloudamqp/amqp-client";
import type { DeliveryPump } from "./delivery-pump.ts";

/** Gets asked ahead of the answers. */
const AHEAD = 100;
/** Deliveries waiting for the reader past which no more are asked for. */
const MAX_WAITING = 1000;

export class GetFeed {
  /** No more will come: the count was reached, the queue ran out, or the channel closed. */
  ended = false;

  constructor(
    private readonly ch: AMQPChannel,
    private readonly queue: string,
    private readonly count: number,
    private readonly pump: DeliveryPump,
  ) {}

  start(): void {
    void this.run();
  }

  private async run(): Promise<void> {
    const asked: Promise<AMQPMessage | null>[] = [];
    let requested = 0;
    let empty = false;
    try {
      while (this.pump.received < this.count) {
        while (!empty && asked.length < AHEAD && requested < this.count) {
          asked.push(this.ch.basicGet(this.queue, { noAck: false }));
          requested++;
        }
        const next = asked.shift();
        if (!next) break;
        const m = await next;
        // the queue ran out (another consumer took the rest): what was asked ahead is still taken
        if (!m) empty = true;
        else this.pump.push(m);
        while (this.pump.waiting >= MAX_WAITING && !this.ch.closed) {
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    } catch {
      // the channel closed: the reader sees it
    } finally {
      this.ended = true;
      this.pump.wakeReader();
    }
  }
}
