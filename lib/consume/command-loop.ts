import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { ConsumeLoop } from "./consume-loop.ts";
import { readerGone, write } from "../term/output.ts";
import { KmqError, UsageError } from "../term/errors.ts";
import { type OutputStream, runHandler, terminateRunningHandlers, type Verdict } from "./handler.ts";
import { TypedField } from "../messages/fields.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "../messages/sources.ts";

function concatNewline(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = 0x0a;
  return out;
}

/**
 * `kmq consume -- <command>`: runs the command for up to --concurrency messages at once. On a
 * stop no new command starts; the running ones get --stop-timeout to finish, then their process
 * groups get SIGTERM and their messages go back to the queue.
 */
export class CommandLoop extends ConsumeLoop {
  private commandFailure?: KmqError;
  /** One command writes to stdout at a time, so outputs never interleave. */
  private outputTurn: Promise<void> = Promise.resolve();
  private readonly output: OutputStream = {
    lock: () => {
      let release = () => {};
      const mine = new Promise<void>((resolve) => (release = resolve));
      const turn = this.outputTurn.then(() => release);
      this.outputTurn = this.outputTurn.then(() => mine);
      return turn;
    },
    write: (bytes) =>
      write(this.io.stdout, bytes).catch((err) => {
        // no more output can be written: take no more messages
        if (readerGone(err)) this.end = "readerGone";
        else this.commandFailure ??= err as KmqError;
        this.stop();
        throw err;
      }),
  };

  private readonly running = new Set<Promise<void>>();

  protected override busy(): boolean {
    return super.busy() || this.running.size > 0;
  }

  protected async process(): Promise<void> {
    const { o } = this;
    const running = this.running;
    let started = 0;
    const more = () => o.count === undefined || started < o.count;
    const stopTimer = this.boundStop();
    try {
      while (true) {
        while (!this.stopping && this.inbox.length > 0 && running.size < o.concurrency && more()) {
          this.armIdleTimer();
          started++;
          const job: Promise<void> = this.handle(this.inbox.shift()!).finally(() => {
            running.delete(job);
            this.wakeUp();
          });
          running.add(job);
        }
        if (running.size === 0 && (this.stopping || !more())) break;
        await this.sleep();
      }
    } finally {
      stopTimer.dispose();
    }
    if (this.commandFailure) throw this.commandFailure;
  }

  protected finish(): Promise<void> {
    return Promise.resolve(); // every message was settled by its own job
  }

  /** After a stop signal, running commands get --stop-timeout seconds before SIGTERM. */
  private boundStop(): { dispose(): void } {
    const { io, o } = this;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onStop = () => {
      timer = setTimeout(() => {
        io.log.warn(
          `commands still running after --stop-timeout ${o.stopTimeout} s: stopping them (SIGTERM)`,
        );
        terminateRunningHandlers();
      }, o.stopTimeout * 1000);
    };
    if (io.stop.aborted) onStop();
    else io.stop.addEventListener("abort", onStop, { once: true });
    return {
      dispose: () => {
        clearTimeout(timer);
        io.stop.removeEventListener("abort", onStop);
      },
    };
  }

  private async handle(msg: AMQPMessage): Promise<void> {
    const { o, io } = this;
    const undecodable = await this.decodeOrPutBack(msg);
    if (undecodable === "stopped") return;
    if (undecodable !== undefined) {
      if (o.ack) return await this.leaveUndecodable(msg, undecodable);
      io.log.warn(`a message (${this.about(msg)}) goes to the command as received: ${undecodable}`);
    }
    const verdict = await runHandler(o.command, msg, {
      timeoutSeconds: o.execTimeout,
      stop: io.stop,
      stream: o.reply && msg.properties.replyTo ? undefined : this.output,
      maxOutput: DEFAULT_MAX_MESSAGE_SIZE,
    });
    if (verdict.action === "ack") return this.succeeded(msg, verdict.stdout);
    this.failed++;
    await this.settleFailure(msg, verdict);
  }

  /** Sends the reply or writes the output, then acks: a crash in between means a redelivery. */
  private async succeeded(msg: AMQPMessage, stdout: Uint8Array): Promise<void> {
    const { o } = this;
    if (o.reply && msg.properties.replyTo) {
      // RPC: the output is the reply; sent before the request is acked (at-least-once)
      const props = { contentType: o.replyContentType, correlationId: msg.properties.correlationId };
      const sent = await msg.channel.basicPublish("", msg.properties.replyTo, stdout, props)
        .then(() => true, () => false);
      if (!sent) return; // the connection is gone: the request will be redelivered
    } else if (stdout.length > 0) {
      const release = await this.output.lock();
      try {
        await this.output.write(stdout);
      } catch {
        return; // unacked: the broker redelivers it
      } finally {
        release();
      }
    }
    await this.settle(() => msg.ack());
    this.handled++;
  }

  /**
   * A quorum queue counts deliveries (x-delivery-count) and, past its x-delivery-limit, dead-letters
   * or drops a message instead of redelivering it: say so, since "requeued" would then be untrue.
   */
  private limitNote(msg: AMQPMessage): string {
    const raw = msg.properties.headers?.["x-delivery-count"] ?? 0;
    const count = Number(raw instanceof TypedField ? raw.value : raw);
    const limit = this.o.topology.queueArguments?.["x-delivery-limit"];
    if (typeof limit === "number" && count >= limit) {
      return ` — but it has been delivered ${count + 1} time(s), the queue's delivery limit (${limit}): ` +
        "the broker dead-letters it (or drops it without a dead-letter exchange) instead of redelivering it";
    }
    return count > 0
      ? ` (delivered ${
        count + 1
      } times; a quorum queue's delivery limit, if it has one, dead-letters or drops it)`
      : "";
  }

  private async settleFailure(msg: AMQPMessage, verdict: Exclude<Verdict, { action: "ack" }>): Promise<void> {
    const { io } = this;
    switch (verdict.action) {
      case "requeue":
        io.log.warn(
          `handler ${verdict.why} for the message with ${this.about(msg)}: requeued${this.limitNote(msg)}` +
            this.outputNote(verdict.output),
        );
        await this.showOutput(verdict.output);
        return this.settle(() => msg.nack(true));
      case "reject":
        io.log.warn(
          `handler ${verdict.why} for the message with ${this.about(msg)}: rejected ` +
            "(dead-lettered if the queue has a dead-letter exchange)" + this.outputNote(verdict.output),
        );
        await this.showOutput(verdict.output);
        return this.settle(() => msg.reject(false));
      case "fail":
        this.commandFailure ??= new UsageError(`${verdict.why}: check the command after --`);
        await this.settle(() => msg.nack(true));
        this.stop();
        return;
    }
  }

  private outputNote(output: Uint8Array | undefined): string {
    return output ? `; its output (${output.length} bytes) follows` : "";
  }

  /**
   * A failed command's output is not message data (the message was not handled), so it goes to
   * stderr, whole, after the line about its message — diagnostics are never discarded.
   */
  private async showOutput(output: Uint8Array | undefined): Promise<void> {
    if (!output) return;
    const ends = output[output.length - 1] === 0x0a;
    await write(this.io.stderr, ends ? output : concatNewline(output)).catch(() => {});
  }

  /** After a lost connection the ack cannot go out; the broker redelivers the message anyway. */
  private settle(action: () => Promise<void>): Promise<void> {
    return this.brokerAck ? Promise.resolve() : action().catch(() => {});
  }
}
