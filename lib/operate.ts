/**
 * Operating on what exists: `kmq purge`, `kmq delete queue|exchange`, `kmq unbind` and
 * `kmq peek`. Each checks first that the entity exists (RabbitMQ deletes and purges what is not
 * there without a word), does one thing and says on stdout what it did.
 */
import type { AMQPChannel, AMQPClient, AMQPMessage } from "@cloudamqp/amqp-client";
import type { GlobalOptions } from "./cli.ts";
import { closeQuietly, connect } from "./connection.ts";
import type { Writable } from "node:stream";
import { write } from "./consume-loop.ts";
import { classifyError, ExitCode, KmqError } from "./errors.ts";
import { type Format, formatMessage, forTerminal } from "./formats.ts";
import type { Log } from "./log.ts";

export interface OperateIo {
  stdout: Writable & { isTTY?: boolean };
  log: Log;
}

export type Operation =
  | { op: "purge"; queue: string }
  | { op: "delete-queue"; queue: string; ifEmpty: boolean; ifUnused: boolean }
  | { op: "delete-exchange"; exchange: string; ifUnused: boolean }
  | { op: "unbind"; exchange: string; queue: string; keys: string[]; args: Record<string, unknown> }
  | { op: "peek"; queue: string; count: number; format: Format };

const text = (s: string) => new TextEncoder().encode(s);

export type OperateOptions = GlobalOptions & { operation: Operation };

/** `kmq purge | delete | unbind | peek`: one connection, one operation, one line per thing done. */
export async function cmdOperate(o: OperateOptions, io: OperateIo): Promise<void> {
  const client = await connect({ broker: o.broker, name: `kmq ${o.operation.op}`, log: io.log });
  try {
    const line = await operate(client, o.operation, io);
    if (line) await write(io.stdout, text(`${line}\n`));
  } finally {
    await closeQuietly(client);
  }
}

async function operate(client: AMQPClient, op: Operation, io: OperateIo): Promise<string | undefined> {
  switch (op.op) {
    case "purge": {
      const ch = await existingQueue(client, op.queue, "purge");
      const { messageCount } = await attempt(`purging queue '${op.queue}'`, () => ch.queuePurge(op.queue));
      return `purged ${messageCount} message(s) from queue '${op.queue}'`;
    }
    case "delete-queue": {
      const ch = await existingQueue(client, op.queue, "delete");
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
    case "peek":
      return await peek(client, op, io);
  }
}

/**
 * Takes up to `count` messages with basic.get, unacknowledged, writes them, then closes the
 * channel: the broker puts every one back where it was (marked redelivered). Nothing is acked,
 * whatever happens, so a peek can take nothing away.
 */
async function peek(
  client: AMQPClient,
  op: Extract<Operation, { op: "peek" }>,
  io: OperateIo,
): Promise<undefined> {
  const ch = await existingQueue(client, op.queue, "peek at");
  const tty = io.stdout.isTTY === true;
  try {
    for (let i = 0; i < op.count; i++) {
      const msg: AMQPMessage | null = await attempt(
        `reading queue '${op.queue}'`,
        () => ch.basicGet(op.queue, { noAck: false }),
      );
      if (!msg) break;
      await write(io.stdout, tty ? forTerminal(msg, op.format) : formatMessage(msg, op.format));
    }
  } finally {
    await ch.close().catch(() => {}); // the unacked messages go back, in their order
  }
  return undefined;
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
