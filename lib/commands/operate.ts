/**
 * Operating on what exists: `kmq purge`, `kmq delete queue|exchange`, `kmq unbind` and
 * `kmq peek`. Each checks first that the entity exists (RabbitMQ deletes and purges what is not
 * there without a word), does one thing and says on stdout what it did.
 */
import type { AMQPChannel, AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";
import type { GlobalOptions } from "./registry.ts";
import { closeQuietly, connect } from "../amqp/connection.ts";
import type { Writable } from "node:stream";
import { readerGone, write } from "../term/output.ts";
import { guardRequeues, queueFacts } from "../amqp/queue-facts.ts";
import { classifyError, ExitCode, KmqError } from "../term/errors.ts";
import { type Format, formatMessage, forTerminal } from "../messages/formats.ts";
import type { Log } from "../term/log.ts";

export interface OperateIo {
  stdout: Writable & { isTTY?: boolean };
  log: Log;
}

export type Operation =
  | { op: "purge"; queue: string }
  | { op: "delete-queue"; queue: string; ifEmpty: boolean; ifUnused: boolean }
  | { op: "delete-exchange"; exchange: string; ifUnused: boolean }
  | { op: "unbind"; exchange: string; queue: string; keys: string[]; args: Record<string, unknown> }
  | { op: "peek"; queue: string; count: number; format: Format; acceptDeliveryCount: boolean };

const text = (s: string) => new TextEncoder().encode(s);

export type OperateOptions = GlobalOptions & { operation: Operation };

/** `kmq purge | delete | unbind | peek`: one connection, one operation, one line per thing done. */
export async function cmdOperate(o: OperateOptions, io: OperateIo): Promise<void> {
  const client = await connect({ broker: o.broker, name: `kmq ${o.operation.op}`, log: io.log });
  try {
    const line = await operate(client, o, io);
    if (line) await write(io.stdout, text(`${line}\n`));
  } catch (err) {
    if (!readerGone(err)) throw err;
    throw new KmqError(
      ExitCode.readerGone,
      "the reader of stdout went away: nothing was taken (a peek puts every message back)",
    );
  } finally {
    await closeQuietly(client);
  }
}

async function operate(client: AMQPClient, o: OperateOptions, io: OperateIo): Promise<string | undefined> {
  const op = o.operation;
  switch (op.op) {
    case "purge": {
      const ch = await existingQueue(client, op.queue, "purge");
      if ((await queueFacts(client, op.queue, o.broker)).type === "stream") {
        throw new KmqError(
          ExitCode.brokerRefused,
          `queue '${op.queue}' is a stream: streams cannot be purged (their retention, x-max-age and ` +
            "x-max-length-bytes, removes old messages); delete it instead",
        );
      }
      const { messageCount } = await attempt(`purging queue '${op.queue}'`, () => ch.queuePurge(op.queue));
      return `purged ${messageCount} message(s) from queue '${op.queue}'`;
    }
    case "delete-queue": {
      const ch = await existingQueue(client, op.queue, "delete");
      if (op.ifEmpty && (await queueFacts(client, op.queue, o.broker)).type === "stream") {
        throw new KmqError(
          ExitCode.brokerRefused,
          `queue '${op.queue}' is a stream: the broker does not count a stream's messages, so --if-empty ` +
            "cannot be checked; look with 'kmq peek', then delete it without --if-empty",
        );
      }
      const { messageCount } = await attempt(
        `deleting queue '${op.queue}'`,
        () => ch.queueDelete(op.queue, { ifEmpty: op.ifEmpty, ifUnused: op.ifUnused }),
        op.ifEmpty
          ? "it is not empty: purge it first, or drop --if-empty"
          : "it has consumers: stop them, or drop --if-unused",
      );
      return `deleted queue '${op.queue}' (${messageCount} message(s) with it)`;
    }
    case "delete-exchange": {
      const ch = await existingExchange(client, op.exchange, "delete");
      await attempt(
        `deleting exchange '${op.exchange}'`,
        () => ch.exchangeDelete(op.exchange, { ifUnused: op.ifUnused }),
        "it has bindings: unbind them first, or drop --if-unused",
      );
      return `deleted exchange '${op.exchange}'`;
    }
    case "unbind": {
      await existingExchange(client, op.exchange, "unbind");
      const ch = await existingQueue(client, op.queue, "unbind");
      for (const key of op.keys) {
        await attempt(
          `unbinding queue '${op.queue}' from exchange '${op.exchange}' (key '${key}')`,
          () => ch.queueUnbind(op.queue, op.exchange, key, op.args),
        );
        await write(
          io.stdout,
          text(`unbound queue '${op.queue}' from exchange '${op.exchange}' (key '${key}')\n`),
        );
      }
      return undefined;
    }
    case "peek": {
      await existingQueue(client, op.queue, "peek at");
      const facts = await guardRequeues(client, op.queue, o.broker, "peek", op.acceptDeliveryCount, io.log);
      const shown = facts.type === "stream" ? await peekStream(client, op, io) : await peek(client, op, io);
      if (shown === 0) io.log.warn(`queue '${op.queue}' is empty`);
      return undefined;
    }
  }
}

/**
 * Takes up to `count` messages with basic.get, unacknowledged, writes them, then closes the
 * channel: the broker puts every one back where it was (marked redelivered). Nothing is acked,
 * whatever happens, so a peek can take nothing away.
 */
async function peek(client: AMQPClient, op: PeekOperation, io: OperateIo): Promise<number> {
  const ch = await client.channel();
  let shown = 0;
  try {
    for (; shown < op.count; shown++) {
      const msg: AMQPMessage | null = await attempt(
        `reading queue '${op.queue}'`,
        () => ch.basicGet(op.queue, { noAck: false }),
      );
      if (!msg) break;
      await show(msg, op, io);
    }
  } finally {
    await ch.close().catch(() => {}); // the unacked messages go back (a classic queue keeps their order)
  }
  return shown;
}

/** How long a stream read waits for one more message before taking the stream's end as reached. */
const STREAM_END_MS = 1_000;

/**
 * A stream keeps its messages whatever a consumer does: the first `count` are read from its first
 * offset (basic.get is not for streams) and the consumer cancelled.
 */
async function peekStream(client: AMQPClient, op: PeekOperation, io: OperateIo): Promise<number> {
  const ch = await client.channel();
  const taken: AMQPMessage[] = [];
  let wake = () => {};
  try {
    await ch.basicQos(Math.min(op.count, 1000));
    const consumer = await ch.basicConsume(
      op.queue,
      { noAck: false, args: { "x-stream-offset": "first" } },
      (m) => {
        if (taken.length < op.count) taken.push(m);
        m.ack().catch(() => {}); // a stream's acks only open the window: nothing is removed
        wake();
      },
    );
    let shown = 0;
    while (shown < op.count) {
      if (shown === taken.length) {
        const more = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), STREAM_END_MS);
          wake = () => (clearTimeout(timer), resolve(true));
        });
        if (!more && shown === taken.length) break;
        continue;
      }
      await show(taken[shown++]!, op, io);
    }
    await consumer.cancel().catch(() => {});
    return shown;
  } finally {
    await ch.close().catch(() => {});
  }
}

type PeekOperation = Extract<Operation, { op: "peek" }>;

function show(msg: AMQPMessage, op: PeekOperation, io: OperateIo): Promise<void> {
  return write(
    io.stdout,
    io.stdout.isTTY === true ? forTerminal(msg, op.format) : formatMessage(msg, op.format),
  );
}

/** A channel on which the queue was found to exist (a passive declare); exit 6 if it does not. */
async function existingQueue(client: AMQPClient, queue: string, verb: string): Promise<AMQPChannel> {
  const ch = await client.channel();
  try {
    await ch.queueDeclare(queue, { passive: true });
  } catch (err) {
    throw missing(err, `queue '${queue}'`, verb);
  }
  return ch;
}

async function existingExchange(client: AMQPClient, exchange: string, verb: string): Promise<AMQPChannel> {
  if (exchange === "" || exchange.startsWith("amq.")) {
    throw new KmqError(
      ExitCode.usage,
      `exchange '${exchange}' is the broker's own: it cannot ${
        verb === "delete" ? "be deleted" : "be changed"
      }`,
    );
  }
  const ch = await client.channel();
  try {
    await ch.exchangeDeclare(exchange, "direct", { passive: true });
  } catch (err) {
    throw missing(err, `exchange '${exchange}'`, verb);
  }
  return ch;
}

function missing(err: unknown, what: string, verb: string): KmqError {
  const e = classifyError(err, `checking ${what}`);
  if (!/NOT_FOUND/.test(e.message)) return e;
  return new KmqError(
    ExitCode.brokerRefused,
    `${what} does not exist: nothing to ${verb}; check the name and the vhost`,
  );
}

/** Runs one broker operation; a PRECONDITION_FAILED gets `refusal` as its hint. */
async function attempt<T>(what: string, action: () => Promise<T>, refusal?: string): Promise<T> {
  try {
    return await action();
  } catch (err) {
    const e = classifyError(err, what);
    if (refusal && /PRECONDITION_FAILED/.test(e.message)) {
      throw new KmqError(ExitCode.brokerRefused, `${what}: the broker refused: ${refusal}`);
    }
    throw e;
  }
}
