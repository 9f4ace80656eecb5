/**
 * One queue's messages into the export file, in order, byte-exact — and the queue left as it was:
 *
 * - classic: every message is taken unacknowledged, written, and all go back when the channel
 *   closes (a classic queue puts them back where they were); they are invisible to other
 *   consumers meanwhile, and that time is reported.
 * - quorum: a quorum queue counts every return toward its delivery limit and does not keep the
 *   order of what many consumers return, so each message is published again to the queue's tail
 *   and the original acked once that is confirmed: the queue goes round once, order kept and no
 *   delivery counted (each message starts again at count 0).
 * - stream: read from its first offset to its last one when the export began; nothing changes.
 * - `drain`: each message is acked once it is written and synced to the file (a move to a file).
 */
import { askReady, readyCount, SilentQueue } from "../amqp/ready-count.ts";
import type { AMQPChannel, AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";
import type { BrokerOptions } from "../amqp/connection.ts";
import { DEFAULT_EXCHANGE_ONLY } from "../amqp/declarations.ts";
import { Publisher } from "../amqp/publisher.ts";
import { republished } from "../amqp/republish.ts";
import { readingWindow } from "../consume/reading-window.ts";
import { messageToRecord } from "../messages/formats.ts";
import { DeliveryError, ExitCode, KmqError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import type { BatchedFile } from "./batched-file.ts";
import { DeliveryPump } from "./delivery-pump.ts";
import { GetFeed } from "./get-feed.ts";
import type { PartFramer } from "./export-file.ts";

export interface QueueReadOptions {
  client: AMQPClient;
  queue: string;
  type: string;
  broker: BrokerOptions;
  log: Log;
  stop: AbortSignal;
  file: BatchedFile;
  framer: PartFramer;
  drain: boolean;
  /** Called after each message written. */
  onMessage: (bytes: number) => void;
}

export interface QueueReadResult {
  /** Messages written. */
  messages: number;
  /** Ready messages (a stream: offsets) when the export of the queue began. */
  atStart: number;
  /** Classic: how long the messages were held from other consumers. */
  heldMs?: number;
}

/** Headers the broker adds to a delivery, not part of the message as it was published. */
const BROKER_HEADERS: Record<string, string[]> = {
  quorum: ["x-delivery-count"],
  stream: ["x-stream-offset"],
};
/** A queue read is over when no message came for this long and none is ready: others took the rest. */
const QUIET_MS = 1000;
/** Nothing delivered this long while messages are ready: something else holds the queue. */
const STALL_MS = 10_000;
/** How long a quorum queue's channel is left open after its last acks (see settled()). */
const SETTLE_MS = 250;
/** Messages written between fsyncs (and acks) with --drain. */
const DRAIN_BATCH = 500;

const encoder = new TextEncoder();

function writeRecord(o: QueueReadOptions, msg: AMQPMessage): void {
  const record = messageToRecord(msg);
  const headers = record.properties.headers;
  if (headers) {
    for (const name of BROKER_HEADERS[o.type] ?? []) delete headers[name];
    if (Object.keys(headers).length === 0) delete record.properties.headers;
  }
  delete (record as { received_at?: string }).received_at;
  const line = encoder.encode(JSON.stringify(record));
  o.framer.line(line);
  o.onMessage(line.length + 1);
}

function stopped(o: QueueReadOptions): KmqError {
  const signal = String(o.stop.reason);
  return new KmqError(
    signal === "SIGINT" ? ExitCode.interrupted : ExitCode.terminated,
    `stopped by ${signal} while exporting queue '${o.queue}': ` +
      (o.drain
        ? `${o.file.path} holds what was taken off the queues so far (each written and synced before its ack)`
        : "no file written; the messages taken went back to their queue" +
          (o.type === "classic" ? " in order" : "")),
  );
}

function stalled(o: QueueReadOptions): KmqError {
  return new KmqError(
    ExitCode.brokerRefused,
    `queue '${o.queue}' delivered nothing to kmq for ${STALL_MS / 1000} s though it holds ready messages ` +
      "(a single-active-consumer queue with another consumer active?): stop that consumer, or leave the queue " +
      "out with --queue",
  );
}

/** `ask` on a channel of its own, closed after. */
async function onOwnChannel<T>(client: AMQPClient, ask: (ch: AMQPChannel) => Promise<T>): Promise<T> {
  const ch = await client.channel();
  try {
    return await ask(ch);
  } finally {
    await ch.close().catch(() => {});
  }
}

/**
 * Takes up to `count` deliveries through `handle`; ends early when nothing came for a while and
 * the queue has none ready (another consumer took them). Returns how many were handled.
 */
async function pumpQueue(
  o: QueueReadOptions,
  ch: AMQPChannel,
  pump: DeliveryPump,
  count: number,
  handle: (msg: AMQPMessage) => Promise<void> | void,
  feed?: GetFeed,
): Promise<number> {
  let taken = 0;
  while (taken < count) {
    if (o.stop.aborted) throw stopped(o);
    if (ch.closed) throw new KmqError(ExitCode.unreachable, `the channel reading queue '${o.queue}' closed`);
    if (feed?.ended && pump.waiting === 0) break;
    const msg = await pump.next(QUIET_MS, o.stop);
    if (!msg) {
      if (o.stop.aborted) throw stopped(o);
      if (feed) continue;
      const quiet = Date.now() - pump.lastAt;
      if (quiet < QUIET_MS) continue;
      // a stream gives what it has at once: a quiet one has no more (retention took the rest)
      if (o.type === "stream") break;
      const ready = await onOwnChannel(o.client, (ch) => askReady(ch, o.queue, { consuming: true }));
      if (ready === 0) break;
      if (quiet >= STALL_MS) throw ready === undefined ? new SilentQueue(o.queue, quiet) : stalled(o);
      continue;
    }
    await handle(msg);
    taken++;
    if (o.file.full) await o.file.drained();
  }
  return taken;
}

export async function exportQueue(o: QueueReadOptions): Promise<QueueReadResult> {
  if (o.type === "stream") return await exportStream(o);
  const atStart = await onOwnChannel(
    o.client,
    (ch) => readyCount(ch, o.queue, { quorum: o.type === "quorum" }),
  );
  if (atStart === 0) return { messages: 0, atStart };
  if (o.drain) return await drainQueue(o, atStart);
  if (o.type === "quorum") return await rotateQueue(o, atStart);
  return await holdQueue(o, atStart);
}

async function holdQueue(o: QueueReadOptions, atStart: number): Promise<QueueReadResult> {
  const ch = await o.client.channel();
  const pump = new DeliveryPump(o.client);
  let firstAt = 0;
  let messages = 0;
  try {
    // no prefetch limit: every message is held unacked until the channel closes
    await ch.basicConsume(o.queue, { noAck: false }, (m) => {
      firstAt ||= Date.now();
      pump.push(m);
    });
    messages = await pumpQueue(o, ch, pump, atStart, (m) => writeRecord(o, m));
  } finally {
    pump.release();
    await ch.close().catch(() => {}); // every message taken goes back, in order
  }
  return { messages, atStart, heldMs: firstAt ? Date.now() - firstAt : 0 };
}

async function drainQueue(o: QueueReadOptions, atStart: number): Promise<QueueReadResult> {
  const ch = await o.client.channel();
  const pump = new DeliveryPump(o.client);
  // a quorum queue counts what goes back: only what is asked for is taken
  const feed = o.type === "quorum" ? new GetFeed(ch, o.queue, atStart, pump) : undefined;
  let written: AMQPMessage[] = [];
  const settle = async () => {
    const last = written.at(-1);
    if (!last) return;
    await o.file.sync(); // on disk before the broker forgets them
    await (feed ? Promise.all(written.map((m) => m.ack())) : last.ack(true));
    written = [];
  };
  try {
    if (feed) feed.start();
    else {
      await ch.basicQos(DRAIN_BATCH * 2);
      await ch.basicConsume(o.queue, { noAck: false }, pump.push);
    }
    const messages = await pumpQueue(o, ch, pump, atStart, async (m) => {
      writeRecord(o, m);
      written.push(m);
      if (written.length >= DRAIN_BATCH || pump.waiting === 0) await settle();
    }, feed);
    await settle();
    if (feed) await settled(ch);
    return { messages, atStart };
  } finally {
    pump.release();
    await ch.close().catch(() => {}); // what was not written and synced goes back
  }
}

async function rotateQueue(o: QueueReadOptions, atStart: number): Promise<QueueReadResult> {
  const publisher = new Publisher({
    broker: o.broker,
    topology: DEFAULT_EXCHANGE_ONLY,
    mandatory: true,
    confirm: true,
    retryTimeout: 0,
    log: o.log,
    window: 1000,
    name: "kmq export",
  });
  await publisher.open();
  const ch = await o.client.channel();
  const pump = new DeliveryPump(o.client);
  const feed = new GetFeed(ch, o.queue, atStart, pump);
  let acked = 0;
  try {
    feed.start();
    const messages = await pumpQueue(o, ch, pump, atStart, async (m) => {
      writeRecord(o, m);
      await publisher.publish({
        exchange: "",
        routingKey: o.queue,
        properties: republished(m.properties, {}, ["x-delivery-count"]),
        body: m.body ?? new Uint8Array(0),
        origin: `message ${pump.received} of queue '${o.queue}'`,
        // the original goes only once its copy is at the tail
        settled: (delivered) => delivered && void m.ack().then(() => acked++, () => {}),
      });
    }, feed);
    await publisher.drain();
    publisher.check();
    await settled(ch);
    return { messages, atStart };
  } catch (err) {
    if (err instanceof DeliveryError) {
      throw new DeliveryError(
        `queue '${o.queue}' could not take back a copy (${err.message}); the originals not copied stay in it`,
      );
    }
    throw err;
  } finally {
    pump.release();
    await publisher.close();
    await ch.close().catch(() => {});
    if (acked < pump.received) {
      o.log.info(`${pump.received - acked} message(s) of '${o.queue}' went back unrotated`);
    }
  }
}

/**
 * A quorum queue's channel sends the settlements of acked messages on its own time: closed at
 * once after the last acks, RabbitMQ 3.10 sometimes hands the last message back (counting a
 * delivery) though it was acked — seen once in three runs. A round trip on the channel and a
 * short wait let them go through first.
 */
async function settled(ch: AMQPChannel): Promise<void> {
  await ch.basicQos(0).catch(() => {});
  await new Promise((r) => setTimeout(r, SETTLE_MS));
}

async function exportStream(o: QueueReadOptions): Promise<QueueReadResult> {
  if (o.drain) {
    o.log.warn(`queue '${o.queue}' is a stream: --drain leaves it as it is (a stream keeps its messages)`);
  }
  const window = await readingWindow(o.client, o.queue, { exitAtEnd: true, offset: "first" }, o.broker);
  if (window.empty || window.offset === undefined) return { messages: 0, atStart: 0 };
  const count = window.count ?? 0;
  const ch = await o.client.channel();
  const pump = new DeliveryPump(o.client);
  try {
    await ch.basicQos(1000);
    await ch.basicConsume(o.queue, { noAck: false, args: { "x-stream-offset": window.offset } }, pump.push);
    const messages = await pumpQueue(o, ch, pump, count, (m) => {
      writeRecord(o, m);
      m.ack().catch(() => {}); // a stream's acks are credit only
    });
    return { messages, atStart: count };
  } finally {
    pump.release();
    await ch.close().catch(() => {});
  }
}
