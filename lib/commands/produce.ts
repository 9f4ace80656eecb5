import { isUtf8 } from "node:buffer";
import { fstatSync } from "node:fs";
import { compress, COMPRESSIONS } from "../messages/compression.ts";
import { failovers } from "../amqp/connection.ts";
import { topologyFrom } from "../amqp/declarations.ts";
import { ExitCode, InputError, KmqError, UsageError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import { boundStop, type OutMessage, Publisher } from "../amqp/publisher.ts";
import { parseRecord, RecordError } from "../messages/records.ts";
import {
  type Body,
  checkFiles,
  checkJson,
  fromArguments,
  fromFiles,
  fromLines,
  fromWholeStream,
  stdinChunks,
  stdinIsDirectory,
} from "../messages/sources.ts";
import { liveLine, pace, perSecond, type ProgressStream } from "../term/progress.ts";
import type { MessageProperties } from "../amqp/wire.ts";
import type { Command } from "@commander-js/extra-typings";
import { messageCommand, messageOptionsFrom, type ProduceOptions } from "./message-options.ts";
import type { Done } from "./options.ts";

export interface ProduceIo {
  /** Opened only when the messages come from stdin. */
  stdin: () => AsyncIterable<Uint8Array> & { isTTY?: boolean };
  /** Where progress goes; a live line is drawn only when it is a TTY. */
  stderr: ProgressStream;
  log: Log;
  verbose: boolean;
  /** Aborted on SIGINT/SIGTERM (the reason names it): send nothing more, wait for the confirms. */
  stop?: AbortSignal;
}

/** Ends the iteration as soon as `stop` aborts, even while a read is pending (stdin may be quiet). */
async function* until<T>(items: AsyncIterable<T>, stop: AbortSignal | undefined): AsyncGenerator<T> {
  if (!stop) return yield* items;
  const it = items[Symbol.asyncIterator]();
  while (!stop.aborted) {
    // a fresh promise each time: racing one long-lived promise keeps every message it lost to alive
    let onAbort = () => {};
    const aborted = new Promise<IteratorResult<T>>((resolve) => {
      onAbort = () => resolve({ done: true, value: undefined });
      stop.addEventListener("abort", onAbort, { once: true });
    });
    let next: IteratorResult<T>;
    try {
      next = await Promise.race([it.next(), aborted]);
    } finally {
      stop.removeEventListener("abort", onAbort);
    }
    if (next.done) return;
    yield next.value;
  }
}

/** Property options and the property each sets; with --jsonl only those given override a record. */
export function propertiesFrom(o: ProduceOptions, onlyGiven: boolean): MessageProperties {
  const use = (name: string) => !onlyGiven || o.given.has(name);
  const p: MessageProperties = {};
  if (use("contentType") || (onlyGiven && o.given.has("json"))) p.contentType = o.contentType;
  if (use("contentEncoding")) p.contentEncoding = o.contentEncoding;
  if (use("transient")) p.deliveryMode = o.persistent ? 2 : 1;
  if (o.priority !== undefined) p.priority = o.priority;
  if (o.expiration !== undefined) p.expiration = o.expiration;
  if (o.messageId !== undefined) p.messageId = o.messageId;
  if (o.correlationId !== undefined) p.correlationId = o.correlationId;
  if (o.replyTo !== undefined) p.replyTo = o.replyTo;
  if (o.type !== undefined) p.type = o.type;
  if (o.appId !== undefined) p.appId = o.appId;
  if (o.userId !== undefined) p.userId = o.userId;
  if (o.timestamp !== undefined) p.timestamp = o.timestamp;
  if (Object.keys(o.headers).length > 0) p.headers = o.headers;
  if (o.compress !== undefined) p.headers = { ...p.headers, compression: COMPRESSIONS[o.compress] };
  return p;
}

/** Where the message bodies come from: arguments, files, or stdin (whole, by line, by record). */
export function readBodies(
  o: ProduceOptions,
  openStdin: ProduceIo["stdin"],
  stop?: AbortSignal,
): AsyncIterable<Body> | Iterable<Body> {
  const sources = [o.messages.length > 0, o.files.length > 0, o.lines, o.jsonl].filter(Boolean).length;
  if (sources > 1) {
    throw new UsageError(
      "give messages as arguments, as --file, or on stdin with --lines or --jsonl: one of them, not several",
    );
  }
  if (o.jsonl && o.compress !== undefined) {
    throw new UsageError("--compress does not go with --jsonl: a record's body is replayed as it was");
  }
  if (o.messages.length > 0) return fromArguments(o.messages);
  if (o.files.length > 0) return fromFiles(o.files);
  const stdin = openStdin();
  if (isDirectory(0)) {
    throw stdinIsDirectory();
  }
  if (stdin.isTTY === true) {
    throw new UsageError(
      "no message given: pass it as an argument, pipe it on stdin, or use --file; run 'kmq produce --help' for usage",
    );
  }
  // a quiet stdin must not hold up a stop: each read (a chunk, not a line) gives way to it
  const chunks = until(stdinChunks(stdin), stop);
  // a record carries its body as base64 (4/3 of it) plus its properties
  const lineMax = o.jsonl ? Math.ceil(o.maxMessageSize * 4 / 3) + 1024 * 1024 : o.maxMessageSize;
  return o.lines || o.jsonl ? fromLines(chunks, lineMax) : fromWholeStream(chunks, o.maxMessageSize);
}

function isDirectory(fd: number): boolean {
  try {
    return fstatSync(fd).isDirectory();
  } catch {
    return false;
  }
}

/** Turns each input body into a message: a plain body, or a --jsonl record with the options on top. */
async function* messages(
  o: ProduceOptions,
  input: AsyncIterable<Body> | Iterable<Body>,
  log: Log,
): AsyncGenerator<OutMessage> {
  if (o.jsonl) return yield* records(o, input);
  const properties = propertiesFrom(o, false);
  // Kombu labels bytes as application/data, binary: a text/plain label would make its consumer
  // raise DecodeError on a body that is not UTF-8
  const labelBytes = !o.json && !o.given.has("contentType") && !o.given.has("contentEncoding");
  const binary: MessageProperties = {
    ...properties,
    contentType: "application/data",
    contentEncoding: "binary",
  };
  let saidBinary = false;
  for await (const body of input) {
    if (o.json) checkJson(body);
    if (body.unterminated && o.lines) {
      log.warn(`${body.origin}, the last, has no newline at the end: sent as a message all the same`);
    }
    const bytes = labelBytes && !isUtf8(body.bytes);
    if (bytes && !saidBinary) {
      saidBinary = true;
      log.info(`${body.origin} is not UTF-8 text: sent as application/data, binary (as Kombu labels bytes)`);
    }
    yield {
      exchange: o.topology.exchange,
      routingKey: o.routingKey,
      properties: bytes ? binary : properties,
      body: o.compress === undefined ? body.bytes : await compress(body.bytes, o.compress),
      origin: body.origin,
    };
  }
}

/** --jsonl: each line is a record; the options given on the command line win over its fields. */
async function* records(
  o: ProduceOptions,
  input: AsyncIterable<Body> | Iterable<Body>,
): AsyncGenerator<OutMessage> {
  const override = propertiesFrom(o, true);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for await (const body of input) {
    const origin = body.origin.replace("line", "record");
    let record;
    try {
      record = parseRecord(decoder.decode(body.bytes));
    } catch (err) {
      const why = err instanceof RecordError ? err.message : "not valid UTF-8";
      if (body.unterminated && why.startsWith("not valid JSON")) {
        throw new InputError(
          `${body.origin} is cut off: the input ended in the middle of it, without a newline (${why})`,
        );
      }
      throw new InputError(`${body.origin} is not a valid record: ${why}`);
    }
    const properties = { ...record.properties, ...override };
    if (record.properties.headers && override.headers) {
      properties.headers = { ...record.properties.headers, ...override.headers };
    }
    yield {
      exchange: o.given.has("exchange") ? o.topology.exchange : record.exchange ?? o.topology.exchange,
      routingKey: o.given.has("routingKey") ? o.routingKey : record.routingKey ?? o.routingKey,
      properties,
      body: record.body,
      origin,
    };
  }
}

/** --repeat keeps the messages in memory and sends them round after round. */
async function* repeated(source: AsyncIterable<OutMessage>, times: number): AsyncGenerator<OutMessage> {
  if (times === 1) return yield* source;
  const all: OutMessage[] = [];
  for await (const m of source) all.push(m);
  for (let round = 1; round <= times; round++) {
    for (const m of all) yield { ...m, origin: `${m.origin} (round ${round})` };
  }
}

/** `kmq produce`: publishes every message and returns only when the broker confirmed them all. */
export async function cmdProduce(o: ProduceOptions, io: ProduceIo): Promise<void> {
  const input = readBodies(o, io.stdin, io.stop);
  if (o.json) { for (const body of fromArguments(o.messages)) checkJson(body); }
  await checkFiles(o.files, o.maxMessageSize);

  // a dump names its own exchanges: declare only what the command line names
  const topologyOptions = o.jsonl && !o.given.has("exchange")
    ? { ...o.topology, exchange: "", queue: o.given.has("queue") ? o.topology.queue : undefined }
    : o.topology;
  const publisher = new Publisher({
    broker: o.broker,
    topology: topologyFrom(topologyOptions),
    mandatory: o.mandatory,
    confirm: o.confirm,
    retryTimeout: o.retryTimeout,
    log: o.quiet ? { info: () => {}, warn: () => {} } : io.log,
  });
  const started = performance.now();
  await publisher.open();
  // a dumb terminal has no cursor control to redraw the line with
  const clearProgress = o.quiet ? () => {} : liveLine(io.stderr, () => {
    const c = publisher.counts;
    const rate = perSecond(c.published, started);
    return [
      `kmq: sent ${c.published}, confirmed ${c.confirmed} (${rate} msg/s)`,
      `kmq: sent ${c.published}, ok ${c.confirmed}, ${rate}/s`,
      `sent ${c.published} ok ${c.confirmed} ${rate}/s`,
    ];
  });
  const stopTimer = boundStop(publisher, o.stopTimeout, io.stop);
  const sent: Sent = { count: 0 };
  try {
    await publishAll(o, io, publisher, started, input, sent);
  } finally {
    stopTimer.dispose();
    clearProgress();
    await publisher.close();
    if (!o.quiet && (o.verbose || io.stderr.isTTY === true || io.stop?.aborted)) {
      io.log.warn(
        o.verbose ? summary(publisher, started) : oneMessage(publisher, sent) ?? summary(publisher, started),
      );
    }
  }
}

/** What has gone out: how many, and the last one (where it went, which line it was). */
interface Sent {
  count: number;
  last?: OutMessage;
}

/** A single message confirmed, on a terminal: one short line saying where it went. */
function oneMessage(p: Publisher, sent: Sent): string | undefined {
  const c = p.counts;
  if (c.published !== 1 || c.confirmed !== 1 || c.returned + c.nacked > 0 || !sent.last) return undefined;
  const { exchange, routingKey } = sent.last;
  const to = exchange === "" ? `queue '${routingKey}'` : `exchange '${exchange}' with key '${routingKey}'`;
  return `published 1 message to ${to}, confirmed`;
}

/** "; resume from line 1235 (tail -n +1235)" when the input was lines and all before were confirmed. */
function resumeHint(sent: Sent): string {
  const m = /^(line|record) (\d+)$/.exec(sent.last?.origin ?? "");
  if (!m) return "";
  const next = Number(m[2]) + 1;
  return `; resume from ${m[1]} ${next} (tail -n +${next} of the same input)`;
}

/** Sends the input, waits for every confirm, and throws what went wrong (with what was confirmed). */
async function publishAll(
  o: ProduceOptions,
  io: ProduceIo,
  publisher: Publisher,
  started: number,
  input: AsyncIterable<Body> | Iterable<Body>,
  sent: Sent,
): Promise<void> {
  let stopped: KmqError | undefined;
  try {
    for await (const msg of repeated(messages(o, input, io.log), o.repeat)) {
      if (io.stop?.aborted) break;
      if (o.rate !== undefined) await pace(sent.count, o.rate, started);
      await publisher.publish(msg);
      sent.count++;
      sent.last = msg;
    }
  } catch (err) {
    if (!(err instanceof KmqError)) throw err;
    stopped = err;
  }
  await publisher.drain();
  // bad input the broker pointed out already says what was confirmed; bad input kmq read does not
  if (stopped instanceof InputError && stopped !== publisher.failure && publisher.counts.published > 0) {
    throw new InputError(
      `${stopped.message}; the ${publisher.delivered} message(s) before it were published and confirmed`,
    );
  }
  if (stopped) throw stopped;
  publisher.check();
  if (io.stop?.aborted) {
    const signal = String(io.stop.reason);
    throw new KmqError(
      signal === "SIGINT" ? ExitCode.interrupted : ExitCode.terminated,
      `stopped by ${signal}: the ${publisher.delivered} message(s) sent were all confirmed; the rest of the input ` +
        `was not sent${resumeHint(sent)}`,
    );
  }
  if (publisher.counts.published === 0) throw new InputError("nothing to send: standard input was empty");
}

function summary(p: Publisher, started: number): string {
  const c = p.counts;
  const s = (performance.now() - started) / 1000;
  const rate = perSecond(c.published, started);
  const again = c.republished ? `, republished ${c.republished}` : "";
  const moved = failovers(p.broker);
  const over = moved ? `, ${moved} failover(s)` : "";
  return `published ${c.published}, confirmed ${c.confirmed}, returned ${c.returned}, nacked ${c.nacked}${again}${over} ` +
    `in ${s.toFixed(2)} s (${rate} msg/s)`;
}

/** `kmq produce`: its options (shared with call: message-options.ts), help and examples. */
export function defineProduce(program: Command, done: Done): void {
  const produce = messageCommand(
    program,
    "produce",
    "publish messages: each argument is one message; with none, stdin is the message",
  );
  produce
    .addHelpText(
      "after",
      `
Examples:
  kmq produce "Hello World!"
  kmq produce -e "" -r jobs -H attempt:=1 --json '{"id": 7}'
  kmq produce -f report.pdf -C application/pdf -E binary
  tail -f app.log | kmq produce -l -e logs -t fanout`,
    )
    .action((messages, o, cmd) => {
      const options = messageOptionsFrom(messages, o, cmd);
      done({
        kind: "run",
        verbose: options.verbose,
        run: async (io) =>
          cmdProduce(options, {
            // opening process.stdin costs start-up time: only touch it when messages come from there
            stdin: io.stdin,
            stderr: await io.stderr(),
            log: io.log,
            verbose: options.verbose,
            stop: io.stop(),
          }),
      });
    });
}
