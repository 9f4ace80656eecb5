import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { Buffer } from "node:buffer";
import { ConsumeLoop } from "./consume-loop.ts";
import { readerGone, write } from "../term/output.ts";
import { printed } from "../messages/formats.ts";

/**
 * How long without a delivery before messages written but held unacked (near --count) are settled:
 * a broker restart while kmq waits would otherwise redeliver what was already written.
 */
const SETTLE_IDLE_MS = 200;

/** Kombu treats a message without a content type as `application/data`. */
const KOMBU_UNTYPED = "application/data";

/**
 * `kmq consume` without a command: writes each message to stdout and acks it only after the
 * write completed, so a crash or a signal can only cause a redelivery, never a loss.
 */
export class PrintLoop extends ConsumeLoop {
  /** Settling these would let the broker send more than --count asks for. */
  private deferredAck?: AMQPMessage;

  protected async process(): Promise<void> {
    const { o, io } = this;
    while (true) {
      // under a steady flow the inbox never empties: a stop must win over it (what is left
      // there is unacked, and the broker requeues it)
      if (io.stop.aborted) break;
      if (this.inbox.length > 0) {
        this.armIdleTimer();
        if (!(await this.handleBatch())) break;
        if (o.count !== undefined && this.handled >= o.count) break;
        continue;
      }
      if (this.stopping) break;
      if (this.deferredAck && o.count !== undefined) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const idle = await Promise.race([
          this.sleep().then(() => false),
          new Promise<boolean>((r) => timer = setTimeout(() => r(true), SETTLE_IDLE_MS)),
        ]);
        clearTimeout(timer);
        if (idle && this.inbox.length === 0 && !this.stopping) await this.settleWritten(o.count);
        continue;
      }
      await this.sleep();
    }
  }

  /**
   * Acks what was written but held back (an ack would have let the broker send more than --count),
   * after narrowing the consumer's window to what --count still takes: nothing written waits unacked.
   */
  private async settleWritten(count: number): Promise<void> {
    const last = this.deferredAck!;
    await this.narrowWindow(count - this.handled);
    await last.channel.basicAck(last.deliveryTag, true);
    if (this.deferredAck === last) this.deferredAck = undefined;
  }

  protected async finish(): Promise<void> {
    if (this.end === "readerGone") return; // nothing is settled: unacked messages go back
    await this.flushUnackedForNoAck();
    if (this.deferredAck) await this.deferredAck.channel.basicAck(this.deferredAck.deliveryTag, true);
  }

  /**
   * Writes every message waiting (up to --count) in one write, then acks them with one
   * multiple-ack: the broker sees the same at-least-once contract at a fraction of the cost.
   * Returns false when the run must end: output can no longer be written, or a body did not decode.
   */
  private async handleBatch(): Promise<boolean> {
    const { o, io } = this;
    const chunks: Uint8Array[] = [];
    let lastWritten: AMQPMessage | undefined;
    let ackable: AMQPMessage | undefined;
    let written = this.handled;
    const shown: AMQPMessage[] = [];
    /** A body that does not decode ends the run after what came before it is written. */
    let halted = false;
    while (this.inbox.length > 0 && (o.count === undefined || written < o.count)) {
      const msg = this.inbox.shift()!;
      if (!this.brokerAck && !o.ack) await msg.ack(); // --no-ack with --count: settled before output
      if (!(await this.accepted(msg))) continue;
      const undecodable = await this.decodeOrPutBack(msg);
      if (undecodable === "stopped") {
        halted = true;
        break;
      }
      if (undecodable !== undefined) {
        if (o.ack) {
          await this.leaveUndecodable(msg, undecodable);
          halted = true;
          break;
        }
        // the broker (or --no-ack with --count) took it already: shown as received, not lost
        io.log.warn(`a message (${this.about(msg)}) is shown as received: ${undecodable}`);
      }
      chunks.push(this.format(msg));
      shown.push(msg);
      written++;
      lastWritten = msg;
      // past count - prefetch, an ack would let the broker send more than --count asks for
      if (o.count === undefined || written <= o.count - this.prefetch) ackable = msg;
    }
    if (!lastWritten) return !halted;
    try {
      await write(io.stdout, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    } catch (err) {
      if (!readerGone(err)) throw err;
      // the reader went away (`| head`): these messages stay unacked and go back to the queue
      this.end = "readerGone";
      this.stopping = true;
      return false;
    }
    if (o.ack && this.sieve?.hold) {
      // a multiple-ack would take the held, non-matching messages too: one ack each
      await Promise.all(shown.map((m) => m.ack()));
    } else if (o.ack) {
      if (ackable) await ackable.channel.basicAck(ackable.deliveryTag, true);
      if (ackable !== lastWritten) this.deferredAck = lastWritten;
    }
    // counted once their acks are out: a connection lost before that redelivers them (the summary
    // said "written and settled" of messages whose acks never left)
    this.handled = written;
    return !halted;
  }

  /** The message as written: on a terminal, with control characters shown, not obeyed. */
  private format(msg: AMQPMessage): Uint8Array {
    const tty = (this.io.stdout as { isTTY?: boolean }).isTTY === true;
    return printed(msg, this.o.format, this.o.template, tty);
  }

  /** --accept: a message of another content type is rejected (dead-lettered), not printed. */
  private async accepted(msg: AMQPMessage): Promise<boolean> {
    const { o, io } = this;
    if (o.accept.length === 0) return true;
    const type = msg.properties.contentType || KOMBU_UNTYPED;
    if (o.accept.includes(type)) return true;
    io.log.warn(
      `rejected a message with content type '${type}' (${this.about(msg)}): not in --accept ${
        o.accept.join(", ")
      }`,
    );
    if (o.ack) await msg.reject(false);
    return false;
  }

  /** With broker auto-ack the prefetched messages are already off the queue: write them out. */
  private async flushUnackedForNoAck(): Promise<void> {
    if (!this.brokerAck) return;
    for (let msg = this.inbox.shift(); msg; msg = this.inbox.shift()) {
      await write(this.io.stdout, this.format(msg));
    }
  }
}
