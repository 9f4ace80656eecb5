/**
 * One consumer on one channel: takes deliveries into an inbox and hands them to a subclass that
 * prints them ({@link PrintLoop}) or runs a command per message (command-loop.ts). It ends on
 * --count, --idle-timeout, a stop signal, the reader of stdout going away, or the broker
 * cancelling it; what it handled, failed and why it ended make kmq's exit code.
 */
import type { AMQPChannel, AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";
import type { Sieve } from "../messages/filter.ts";
import { SourceConsumer } from "../amqp/source-consumer.ts";
import type { Writable } from "node:stream";
import type { GlobalOptions } from "../amqp/connection.ts";
import type { TopologyOptions } from "../amqp/declarations.ts";
import type { Format } from "../messages/formats.ts";
import { classifyError, ExitCode, KmqError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import { putBackSafely } from "./put-back.ts";
import type { MessagePrinter } from "../messages/formats.ts";
import { decodeContent, decompress } from "../messages/compression.ts";
import { DecodeStopped } from "../messages/lzma.ts";

export interface ConsumeOptions extends GlobalOptions {
  topology: TopologyOptions;
  /** basic.consume's arguments: x-stream-offset, x-priority. */
  consumerArguments: Record<string, unknown>;
  count?: number;
  idleTimeout?: number;
  prefetch: number;
  ack: boolean;
  accept: string[];
  format: Format;
  /** --exit-at-end, --last, --until: what of the queue as it is at the start is read. */
  window?: { exitAtEnd: boolean; last?: number; until?: Date | string };
  /** Set from `window`: messages ready in the queue when kmq started. */
  atStart?: number;
  /** --template: how each message is printed instead of `format`. */
  template?: MessagePrinter;
  /** Run this once per message instead of printing it (`-- cmd args`). */
  command: string[];
  concurrency: number;
  execTimeout?: number;
  /** Seconds to keep reconnecting after the connection drops; undefined: forever. */
  retryTimeout?: number;
  /** After a stop signal, seconds running commands get before their process groups are killed. */
  stopTimeout: number;
  /** Undo content_encoding gzip/deflate before output or the command. */
  decode: boolean;
  /** Publish the command's stdout to the request's reply_to (RPC server). */
  reply: boolean;
  replyContentType: string;
  /** A CEL condition: only matching messages are printed or handled. */
  filter?: string;
  /** Ack (drop) the messages --filter does not match, instead of holding them for the queue. */
  ackUnmatched: boolean;
  /** --filter may hold messages of a quorum queue whose delivery limit counts their return. */
  acceptDeliveryCount: boolean;
}

export interface ConsumeIo {
  /** Message data goes here; nothing else does. */
  stdout: Writable;
  /** Where a failed command's output is shown, after the line that says what became of its message. */
  stderr: Writable;
  log: Log;
  /** Aborted on SIGINT/SIGTERM: finish the message in hand, then stop cleanly. */
  stop: AbortSignal;
  /** stderr is a terminal: say once what kmq waits on. */
  interactive?: boolean;
}

/** Said once per run, not again after a reconnect. */
let saidWaiting = false;

/** Why a loop ended, beyond the ordinary (--count, --idle-timeout, a stop signal). */
export type LoopEnd = "done" | "readerGone";

export abstract class ConsumeLoop {
  protected readonly inbox: AMQPMessage[] = [];
  private notify?: () => void;
  protected stopping = false;
  protected failure?: unknown;
  /** Messages written or handled by the command: what --count counts, across reconnects. */
  handled = 0;
  /** Messages a command failed on (rejected or requeued), or whose body did not decode. */
  failed = 0;
  end: LoopEnd = "done";
  private idleTimer?: ReturnType<typeof setTimeout>;
  /** The consumer's window; --count narrows it as the end nears ({@link narrowWindow}). */
  protected prefetch: number;
  /** Broker-side auto-ack; with --no-ack and --count kmq acks on receipt instead, so prefetch holds. */
  protected readonly brokerAck: boolean;

  private source?: SourceConsumer;

  constructor(
    protected readonly channel: AMQPChannel,
    protected readonly queue: string,
    protected readonly o: ConsumeOptions,
    protected readonly io: ConsumeIo,
    protected readonly sieve?: Sieve,
  ) {
    const wanted = Math.max(o.prefetch, o.command.length > 0 ? o.concurrency : 0);
    // held messages fill the window: --count must not shrink it to a consumer renewal per message
    this.prefetch = sieve?.hold ? wanted : Math.min(wanted, o.count ?? Infinity);
    this.brokerAck = !o.ack && o.count === undefined;
  }

  /** Takes messages and hands them on until the loop has a reason to end. */
  protected abstract process(): Promise<void>;
  /** After the consumer is cancelled: settle or write what is still pending. */
  protected abstract finish(): Promise<void>;

  async run(): Promise<void> {
    const { channel, io } = this;
    try {
      await channel.basicQos(this.prefetch);
    } catch (err) {
      throw classifyError(err, "setting the prefetch");
    }
    const onStop = () => this.stop();
    io.stop.addEventListener("abort", onStop);
    try {
      await this.consume();
      this.announce();
      this.armIdleTimer();
      await this.process();
      if (this.failure) throw this.failure;
      await this.source?.cancel();
      await this.finish();
      // what was delivered but never handled goes back; on a quorum queue, safely (put-back.ts)
      if (this.o.ack && !this.brokerAck && this.end !== "readerGone") {
        await putBackSafely(
          channel.connection as AMQPClient,
          this.queue,
          this.inbox.splice(0),
          this.o.broker,
          io.log,
        );
      }
    } catch (err) {
      if (err instanceof KmqError) throw err;
      // an ack on a channel whose connection just went ("Channel is closed"): a lost connection,
      // to reconnect after, not a failure of kmq's (its unacked messages come again)
      if (channel.connection.closed) {
        throw new KmqError(
          ExitCode.unreachable,
          `consuming from queue '${this.queue}': the connection was lost (${(err as Error).message ?? err})`,
        );
      }
      throw classifyError(err, `consuming from queue '${this.queue}'`);
    } finally {
      clearTimeout(this.idleTimer);
      io.stop.removeEventListener("abort", onStop);
    }
  }

  private async consume(): Promise<void> {
    this.source = new SourceConsumer(this.channel, this.queue, {
      window: this.prefetch,
      noAck: this.brokerAck,
      args: this.o.consumerArguments,
      sieve: this.sieve,
      deliver: (msg) => {
        this.inbox.push(msg);
        this.wakeUp();
      },
      ended: (err) => {
        if (err !== undefined) {
          this.failure ??= /cancelled by the server/i.test(String((err as Error)?.message))
            ? new KmqError(
              ExitCode.cancelled,
              `the broker cancelled the consumer of queue '${this.queue}' (the queue was deleted, or its node ` +
                `went away) after ${this.handled} message(s); declare the queue again, then rerun`,
            )
            : err;
        }
        this.stop();
      },
    });
    try {
      await this.source.start();
    } catch (err) {
      throw classifyError(err, `consuming from queue '${this.queue}'`);
    }
  }

  private announce(): void {
    this.io.log.info(`consuming from queue '${this.queue}' (prefetch ${this.prefetch})`);
    if (this.io.interactive && !saidWaiting) {
      saidWaiting = true;
      const { exchange, bindingKeys } = this.o.topology;
      const bound = exchange === "" ? "" : ` (bound to ${exchange}/${bindingKeys.join(", ")})`;
      this.io.log.warn(`waiting on queue '${this.queue}'${bound}; Ctrl-C to stop`);
    }
  }

  /** Gives the consumer a window of `n` messages from now on (a new consumer on the same channel). */
  protected async narrowWindow(n: number): Promise<void> {
    this.prefetch = n;
    await this.source?.resize(n);
  }

  /** Waits until a delivery, a stop or the end of a running job wakes the loop. */
  protected sleep(): Promise<void> {
    return new Promise<void>((resolve) => (this.notify = resolve));
  }

  protected stop(): void {
    this.stopping = true;
    this.wakeUp();
  }

  protected wakeUp(): void {
    const notify = this.notify;
    this.notify = undefined;
    notify?.();
  }

  protected armIdleTimer(): void {
    if (this.o.idleTimeout === undefined) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      // messages waiting, or a command still at work, is not idle
      if (this.busy()) return this.armIdleTimer();
      this.io.log.info(`no message for ${this.o.idleTimeout} s: stopping`);
      this.stop();
    }, this.o.idleTimeout * 1000);
  }

  /** Whether work is in hand, so --idle-timeout must not end the run yet. */
  protected busy(): boolean {
    return this.inbox.length > 0;
  }

  /**
   * --decode met a body it cannot decode: it goes back to the queue untouched (a requeue; a
   * classic queue puts it back in its place) and the loop stops, so it is neither lost nor taken
   * again and again. Exit 8 names it.
   */
  protected async leaveUndecodable(msg: AMQPMessage, why: string): Promise<void> {
    this.failed++;
    this.stop();
    this.io.log.warn(
      `a message (${this.about(msg)}) stays in the queue: ${why}; kmq stops here (without --decode it is ` +
        "taken as it is)",
    );
    await msg.nack(true).catch(() => {});
  }

  /** --decode with the stop signal: a body still being decoded when it came goes back untouched. */
  protected async decodeOrPutBack(msg: AMQPMessage): Promise<string | undefined | "stopped"> {
    if (!this.o.decode) return undefined;
    try {
      return await decodeBody(msg, this.io.stop);
    } catch (err) {
      if (!(err instanceof DecodeStopped)) throw err;
      await msg.nack(true).catch(() => {});
      return "stopped";
    }
  }

  /** "routing key 'k', message id 'm'": how a report names a message. */
  protected about(msg: AMQPMessage): string {
    return `routing key '${msg.routingKey}'${
      msg.properties.messageId ? `, message id '${msg.properties.messageId}'` : ""
    }`;
  }
}

/**
 * --decode: undoes Kombu's `compression` header (then drops it) and a gzip or deflate
 * content_encoding (then drops that). Returns undefined when the body is decoded (or needs no
 * decoding), else why it does not decode; the message is left as it was. Throws DecodeStopped
 * when a stop signal came first.
 */
export async function decodeBody(msg: AMQPMessage, stop?: AbortSignal): Promise<string | undefined> {
  const headers = msg.properties.headers as Record<string, unknown> | undefined;
  const compression = typeof headers?.compression === "string" ? headers.compression : undefined;
  const encoding = msg.properties.contentEncoding?.toLowerCase();
  const encoded = encoding === "gzip" || encoding === "x-gzip" || encoding === "deflate";
  if (compression === undefined && !encoded) return undefined;
  try {
    let body = msg.body ?? new Uint8Array(0);
    if (compression !== undefined) body = await decompress(body, compression, stop);
    if (encoded) body = await decodeContent(body, encoding!);
    msg.body = body;
    if (compression !== undefined) delete headers!.compression;
    if (encoded) delete msg.properties.contentEncoding;
    return undefined;
  } catch (err) {
    if (err instanceof DecodeStopped) throw err;
    return `its ${compression ?? encoding} body does not decode: ${(err as Error).message}`;
  }
}
