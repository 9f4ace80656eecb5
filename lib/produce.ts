import type { AMQPProperties } from "@cloudamqp/amqp-client";
import { closeQuietly, connect } from "./connection.ts";
import type { ProduceOptions } from "./cli.ts";
import { declareTopology, topologyFrom } from "./declarations.ts";
import { classifyError, InputError, KmqError, UsageError } from "./errors.ts";
import type { Log } from "./log.ts";
import { Publisher } from "./publisher.ts";
import {
  type Body,
  checkFiles,
  checkJson,
  fromArguments,
  fromFiles,
  fromLines,
  fromWholeStream,
} from "./sources.ts";

export interface ProduceIo {
  /** Opened only when the messages come from stdin. */
  stdin: () => AsyncIterable<Uint8Array> & { isTTY?: boolean };
  /** Where the closing summary goes when it is wanted (a TTY, or --verbose). */
  showSummary: boolean;
  log: Log;
}

export function messageProperties(o: ProduceOptions): AMQPProperties {
  const p: AMQPProperties = {
    contentType: o.contentType,
    contentEncoding: o.contentEncoding,
    deliveryMode: o.persistent ? 2 : 1,
  };
  if (o.priority !== undefined) p.priority = o.priority;
  if (o.expiration !== undefined) p.expiration = o.expiration;
  if (o.messageId !== undefined) p.messageId = o.messageId;
  if (o.correlationId !== undefined) p.correlationId = o.correlationId;
  if (o.replyTo !== undefined) p.replyTo = o.replyTo;
  if (o.type !== undefined) p.type = o.type;
  if (o.appId !== undefined) p.appId = o.appId;
  if (Object.keys(o.headers).length > 0) p.headers = o.headers as AMQPProperties["headers"];
  return p;
}

function bodies(o: ProduceOptions, io: ProduceIo): AsyncIterable<Body> | Iterable<Body> {
  const sources = [o.messages.length > 0, o.files.length > 0, o.lines].filter(Boolean).length;
  if (sources > 1) {
    throw new UsageError("give messages as arguments, as --file or as --lines on stdin, not several at once");
  }
  if (o.messages.length > 0) return fromArguments(o.messages);
  if (o.files.length > 0) return fromFiles(o.files);
  const stdin = io.stdin();
  if (stdin.isTTY === true) {
    throw new UsageError(
      "no message given: pass it as an argument, pipe it on stdin, or use --file; run 'kmq produce --help' for usage",
    );
  }
  return o.lines ? fromLines(stdin) : fromWholeStream(stdin);
}

/** `kmq produce`: publishes every message and returns only when the broker confirmed them all. */
export async function cmdProduce(o: ProduceOptions, io: ProduceIo): Promise<void> {
  const source = bodies(o, io);
  if (o.json) { for (const body of fromArguments(o.messages)) checkJson(body); }
  await checkFiles(o.files);

  const started = performance.now();
  const client = await connect({ url: o.url, name: "kmq produce", log: io.log });
  let publisher: Publisher | undefined;
  try {
    const channel = await client.channel();
    await declareTopology(channel, topologyFrom(o.topology), io.log);
    if (o.confirm) {
      try {
        await channel.confirmSelect();
      } catch (err) {
        throw classifyError(err, "enabling publisher confirms");
      }
    }
    publisher = new Publisher(channel, {
      exchange: o.topology.exchange,
      routingKey: o.routingKey,
      properties: messageProperties(o),
      mandatory: o.mandatory,
      confirm: o.confirm,
    });
    let stopped: KmqError | undefined;
    try {
      for await (const body of source) {
        if (o.json) checkJson(body);
        await publisher.publish(body.bytes);
      }
    } catch (err) {
      if (!(err instanceof KmqError)) throw err;
      stopped = err;
    }
    await publisher.drain();
    // A confirm comes after the return of its message, so with confirms every return is in now;
    // without them, closing the channel waits for every return sent before its close-ok.
    if (!o.confirm && !channel.closed) await channel.close().catch(() => {});
    if (stopped instanceof InputError && o.lines) {
      const c = publisher.counts;
      throw new InputError(
        `${stopped.message}; ${c.confirmed - c.returned} message(s) before it were published and confirmed`,
      );
    }
    if (stopped) throw stopped;
    publisher.check();
    if (publisher.counts.published === 0) {
      throw new InputError("nothing to send: standard input was empty");
    }
  } finally {
    await closeQuietly(client);
    if (publisher && io.showSummary) summary(publisher, started, io.log);
  }
}

function summary(p: Publisher, started: number, log: Log): void {
  const c = p.counts;
  const s = (performance.now() - started) / 1000;
  const rate = s > 0 ? Math.round(c.published / s) : c.published;
  log.warn(
    `published ${c.published}, confirmed ${c.confirmed}, returned ${c.returned}, nacked ${c.nacked} ` +
      `in ${s.toFixed(2)} s (${rate} msg/s)`,
  );
}
