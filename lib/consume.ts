import type { AMQPChannel, AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";
import { Buffer } from "node:buffer";
import type { Writable } from "node:stream";
import type { ConsumeOptions } from "./cli.ts";
import { closeQuietly, connect } from "./connection.ts";
import { declareTopology, topologyFrom } from "./declarations.ts";
import { classifyError, ExitCode, KmqError, UsageError } from "./errors.ts";
import { formatMessage } from "./formats.ts";
import { runHandler } from "./handler.ts";
import { gunzipSync, inflateRawSync, inflateSync } from "node:zlib";

function decodeBody(body: Uint8Array, encoding: string): Uint8Array {
  if (encoding !== "deflate") return gunzipSync(body);
  try {
    return inflateSync(body);
  } catch {
    return inflateRawSync(body); // "deflate" is sent both with and without the zlib wrapper
  }
}
import type { Log } from "./log.ts";

export interface ConsumeIo {
  /** Message data goes here; nothing else does. */
  stdout: Writable;
  log: Log;
  /** Aborted on SIGINT/SIGTERM: finish the message in hand, then stop cleanly. */
  stop: AbortSignal;
}

/** Kombu treats a message without a content type as `application/data`. */
const KOMBU_UNTYPED = "application/data";

/** Writes to stdout; a failure is a KmqError, never mistaken for a lost connection (and retried). */
function write(out: Writable, bytes: Uint8Array): Promise<void> {
  const failed = (err: Error) =>
    new KmqError(ExitCode.unexpected, `writing to stdout: ${err.message}`, { cause: err });
  return new Promise((resolve, reject) => {
    try {
      out.write(bytes, (err) => (err ? reject(failed(err)) : resolve()));
    } catch (err) {
      reject(failed(err as Error)); // some runtimes throw instead of calling back
    }
  });
}

/** A failed {@link write} because the reader went away (`| head`). */
const readerGone = (err: unknown) => (err as { cause?: { code?: string } }).cause?.code === "EPIPE";

/**
 * `kmq consume`: writes each message to stdout and acks it only after the write completed, so a
 * crash or a signal can only cause a redelivery, never a loss.
 */
export async function cmdConsume(o: ConsumeOptions, io: ConsumeIo): Promise<void> {
  let client = await connect({ broker: o.broker, name: "kmq consume", log: io.log });
  let previousQueue: string | undefined;
  let handled = 0;
  const stoppedBy = () =>
    io.log.warn(
      `stopped by ${String(io.stop.reason)}: ${handled} message(s) ${
        o.command.length > 0 ? "handled" : "written"
      }${o.ack ? " and settled" : ""}; the rest stay in the queue`,
    );
  while (true) {
    let loop: ConsumeLoop | undefined;
    try {
      const channel = await client.channel();
      const queue = await declareTopology(channel, topologyFrom(o.topology), io.log);
      if (queue === undefined) throw new Error("consume needs a queue");
      if (previousQueue !== undefined && queue !== previousQueue) {
        io.log.warn(`the server-named queue '${previousQueue}' is gone; consuming from '${queue}' now`);
      }
      previousQueue = queue;
      // --count counts across reconnects
      const count = o.count === undefined ? undefined : o.count - handled;
      loop = new ConsumeLoop(channel, queue, { ...o, count }, io);
      await loop.run();
      handled += loop.handled;
      if (io.stop.aborted) stoppedBy();
      return;
    } catch (err) {
      const e = err instanceof KmqError ? err : classifyError(err, "consuming");
      // a refused login or declaration is final; a lost connection is worth another one
      if (e.exitCode !== ExitCode.unreachable || io.stop.aborted) throw e;
      handled += loop?.handled ?? 0;
      io.log.warn(`${e.message.replace(/; check that.*$/, "")}; reconnecting`);
    } finally {
      await closeQuietly(client);
    }
    const next = await reconnect(o, io);
    if (!next) {
      stoppedBy(); // while waiting for the broker
      return;
    }
    client = next;
  }
}

/**
 * Connects again with backoff (0.1 s doubling to 5 s) until it works, --retry-timeout runs out
 * (exit 4) or a signal stops kmq (undefined). Messages in hand when the connection dropped are
 * redelivered by the broker: at-least-once.
 */
async function reconnect(o: ConsumeOptions, io: ConsumeIo): Promise<AMQPClient | undefined> {
  const deadline = o.retryTimeout === undefined ? Infinity : Date.now() + o.retryTimeout * 1000;
  let delay = 100;
  while (!io.stop.aborted) {
    if (Date.now() >= deadline) {
      throw new KmqError(
        ExitCode.unreachable,
        `the broker did not come back within --retry-timeout ${o.retryTimeout} s; messages not acked are still in the queue`,
      );
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(delay, deadline - Date.now()));
      io.stop.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    if (io.stop.aborted) return undefined;
    delay = Math.min(delay * 2, 5000);
    try {
      const client = await connect({ broker: o.broker, name: "kmq consume", log: io.log });
      io.log.warn("reconnected");
      return client;
    } catch (err) {
      if (!(err instanceof KmqError) || err.exitCode !== ExitCode.unreachable) throw err;
    }
  }
  return undefined;
}

class ConsumeLoop {
  private readonly inbox: AMQPMessage[] = [];
  private notify?: () => void;
  private stopping = false;
  private failure?: unknown;
  private written = 0;
  /** Messages written or handled by the command: what --count counts, across reconnects. */
  get handled(): number {
    return this.written;
  }
  /** Settling these would let the broker send more than --count asks for. */
  private deferredAck?: AMQPMessage;
  private idleTimer?: ReturnType<typeof setTimeout>;
  private readonly prefetch: number;
  /** Broker-side auto-ack; with --no-ack and --count kmq acks on receipt instead, so prefetch holds. */
  private readonly brokerAck: boolean;

  constructor(
    private readonly channel: AMQPChannel,
    private readonly queue: string,
    private readonly o: ConsumeOptions,
    private readonly io: ConsumeIo,
  ) {
    this.prefetch = Math.min(
      Math.max(o.prefetch, o.command.length > 0 ? o.concurrency : 0),
      o.count ?? Infinity,
    );
    this.brokerAck = !o.ack && o.count === undefined;
  }

  async run(): Promise<void> {
    const { channel, o, io } = this;
    try {
      await channel.basicQos(this.prefetch);
    } catch (err) {
      throw classifyError(err, "setting the prefetch");
    }
    const onStop = () => this.stop();
    io.stop.addEventListener("abort", onStop);
    let consumer;
    try {
      consumer = await channel.basicConsume(this.queue, { noAck: this.brokerAck }, (msg) => {
        this.inbox.push(msg);
        this.wakeUp();
      });
    } catch (err) {
      throw classifyError(err, `consuming from queue '${this.queue}'`);
    }
    io.log.info(`consuming from queue '${this.queue}' (prefetch ${this.prefetch})`);
    consumer.wait().then(
      () => this.stop(),
      (err) => {
        this.failure ??= err;
        this.stop();
      },
    );
    this.armIdleTimer();
    try {
      if (o.command.length > 0) await this.runCommands();
      else {
        while (true) {
          // under a steady flow the inbox never empties: a stop must win over it (what is left
          // there is unacked, and the broker requeues it)
          if (io.stop.aborted) break;
          if (this.inbox.length > 0) {
            this.armIdleTimer();
            if (!(await this.handleBatch())) break;
            if (o.count !== undefined && this.written >= o.count) break;
            continue;
          }
          if (this.stopping) break;
          await new Promise<void>((resolve) => (this.notify = resolve));
        }
      }
      if (this.failure) throw this.failure;
      await consumer.cancel().catch(() => {});
      await this.flushUnackedForNoAck();
      if (this.deferredAck) await this.deferredAck.channel.basicAck(this.deferredAck.deliveryTag, true);
    } catch (err) {
      if (err instanceof KmqError) throw err;
      throw classifyError(err, `consuming from queue '${this.queue}'`);
    } finally {
      clearTimeout(this.idleTimer);
      io.stop.removeEventListener("abort", onStop);
    }
  }

  /**
   * Writes every message waiting (up to --count) in one write, then acks them with one
   * multiple-ack: the broker sees the same at-least-once contract at a fraction of the cost.
   * Returns false when output can no longer be written.
   */
  private async handleBatch(): Promise<boolean> {
    const { o, io } = this;
    const chunks: Uint8Array[] = [];
    let lastWritten: AMQPMessage | undefined;
    let ackable: AMQPMessage | undefined;
    let written = this.written;
    while (this.inbox.length > 0 && (o.count === undefined || written < o.count)) {
      const msg = this.inbox.shift()!;
      if (!this.brokerAck && !o.ack) await msg.ack(); // --no-ack with --count: settled before output
      if (o.accept.length > 0) {
        const type = msg.properties.contentType || KOMBU_UNTYPED;
        if (!o.accept.includes(type)) {
          io.log.warn(
            `rejected a message with content type '${type}' (routing key '${msg.routingKey}'): ` +
              `not in --accept ${o.accept.join(", ")}`,
          );
          if (o.ack) await msg.reject(false);
          continue;
        }
      }
      if (o.decode && !(await this.decoded(msg))) continue;
      chunks.push(formatMessage(msg, o.format));
      written++;
      lastWritten = msg;
      // past count - prefetch, an ack would let the broker send more than --count asks for
      if (o.count === undefined || written <= o.count - this.prefetch) ackable = msg;
    }
    if (!lastWritten) return true;
    try {
      await write(io.stdout, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    } catch (err) {
      if (!readerGone(err)) throw err;
      // the reader went away (`| head`): these messages stay unacked and go back to the queue
      this.stopping = true;
      return false;
    }
    this.written = written;
    if (o.ack) {
      if (ackable) await ackable.channel.basicAck(ackable.deliveryTag, true);
      if (ackable !== lastWritten) this.deferredAck = lastWritten;
    }
    return true;
  }

  /**
   * Runs the command for up to --concurrency messages at once. On a stop, no new command starts
   * and the running ones finish; their messages are settled if the channel is still there.
   */
  private async runCommands(): Promise<void> {
    const { o } = this;
    const running = new Set<Promise<void>>();
    let started = 0;
    const more = () => o.count === undefined || started < o.count;
    while (true) {
      while (!this.stopping && this.inbox.length > 0 && running.size < o.concurrency && more()) {
        this.armIdleTimer();
        started++;
        const job: Promise<void> = this.handleWithCommand(this.inbox.shift()!).finally(() => {
          running.delete(job);
          this.wakeUp();
        });
        running.add(job);
      }
      if (running.size === 0 && (this.stopping || !more())) break;
      await new Promise<void>((resolve) => (this.notify = resolve));
    }
    if (this.commandFailure) throw this.commandFailure;
  }

  private commandFailure?: KmqError;

  private async handleWithCommand(msg: AMQPMessage): Promise<void> {
    const { o, io } = this;
    if (o.decode && !(await this.decoded(msg))) return;
    const verdict = await runHandler(o.command, msg, o.execTimeout);
    const about = `routing key '${msg.routingKey}'${
      msg.properties.messageId ? `, message id '${msg.properties.messageId}'` : ""
    }`;
    // after a lost connection the ack cannot go out; the broker redelivers the message anyway
    const settle = (
      action: () => Promise<void>,
    ) => (this.brokerAck ? Promise.resolve() : action().catch(() => {}));
    switch (verdict.action) {
      case "ack":
        if (o.reply && msg.properties.replyTo) {
          // RPC: the output is the reply; sent before the request is acked (at-least-once)
          const props = { contentType: o.replyContentType, correlationId: msg.properties.correlationId };
          const sent = await msg.channel.basicPublish("", msg.properties.replyTo, verdict.stdout, props)
            .then(() => true, () => false);
          if (!sent) return; // the connection is gone: the request will be redelivered
        } else if (verdict.stdout.length > 0) {
          try {
            await write(io.stdout, verdict.stdout);
          } catch (err) {
            this.commandFailure ??= err as KmqError;
            this.stop();
            return; // unacked: the broker redelivers it
          }
        }
        await settle(() => msg.ack());
        this.written++;
        return;
      case "requeue":
        io.log.warn(`handler ${verdict.why} for the message with ${about}: requeued`);
        await settle(() => msg.nack(true));
        return;
      case "reject":
        io.log.warn(
          `handler ${verdict.why} for the message with ${about}: rejected (dead-lettered if the queue has a dead-letter exchange)`,
        );
        await settle(() => msg.reject(false));
        return;
      case "fail":
        this.commandFailure ??= new UsageError(`${verdict.why}: check the command after --`);
        await settle(() => msg.nack(true));
        this.stop();
        return;
    }
  }

  /**
   * --decode: replaces a gzip or deflate body with its plain bytes (and drops content_encoding).
   * A body that does not decode is rejected without requeue and reported; returns false then.
   */
  private async decoded(msg: AMQPMessage): Promise<boolean> {
    const encoding = msg.properties.contentEncoding?.toLowerCase();
    if (encoding !== "gzip" && encoding !== "x-gzip" && encoding !== "deflate") return true;
    try {
      msg.body = decodeBody(msg.body ?? new Uint8Array(0), encoding);
      delete msg.properties.contentEncoding;
      return true;
    } catch (err) {
      this.io.log.warn(
        `rejected a message (routing key '${msg.routingKey}') whose ${encoding} body does not decode: ${
          (err as Error).message
        }`,
      );
      if (!this.brokerAck) await msg.reject(false).catch(() => {});
      return false;
    }
  }

  /** With broker auto-ack the prefetched messages are already off the queue: write them out. */
  private async flushUnackedForNoAck(): Promise<void> {
    if (!this.brokerAck) return;
    for (let msg = this.inbox.shift(); msg; msg = this.inbox.shift()) {
      await write(this.io.stdout, formatMessage(msg, this.o.format));
    }
  }

  private stop(): void {
    this.stopping = true;
    this.wakeUp();
  }

  private wakeUp(): void {
    const notify = this.notify;
    this.notify = undefined;
    notify?.();
  }

  private armIdleTimer(): void {
    if (this.o.idleTimeout === undefined) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.io.log.info(`no message for ${this.o.idleTimeout} s: stopping`);
      this.stop();
    }, this.o.idleTimeout * 1000);
  }
}
