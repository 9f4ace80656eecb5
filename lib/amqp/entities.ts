/**
 * Operating on what exists (purge, delete, unbind, peek): each command connects once, checks that
 * the entity is there (RabbitMQ purges and deletes what is not there without a word), does one
 * thing and says on stdout what it did.
 */
import type { AMQPChannel, AMQPClient } from "@cloudamqp/amqp-client";
import type { Writable } from "node:stream";
import { classifyError, ExitCode, KmqError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import { write } from "../term/output.ts";
import { closeQuietly, connect, type GlobalOptions } from "./connection.ts";

export interface OperateIo {
  stdout: Writable & { isTTY?: boolean };
  log: Log;
}

/** Connects, runs `action`, writes the line it returns (if any) to stdout, and closes. */
export async function operateOnce(
  o: GlobalOptions,
  name: string,
  io: OperateIo,
  action: (client: AMQPClient) => Promise<string | undefined>,
): Promise<void> {
  const client = await connect({ broker: o.broker, name: `kmq ${name}`, log: io.log });
  try {
    const line = await action(client);
    if (line) await write(io.stdout, new TextEncoder().encode(`${line}\n`));
  } finally {
    await closeQuietly(client);
  }
}

/** A channel on which the queue was found to exist (a passive declare); exit 6 if it does not. */
export async function existingQueue(client: AMQPClient, queue: string, verb: string): Promise<AMQPChannel> {
  const ch = await client.channel();
  try {
    await ch.queueDeclare(queue, { passive: true });
  } catch (err) {
    throw missing(err, `queue '${queue}'`, verb);
  }
  return ch;
}

/**
 * A channel on which the exchange was found to exist; exit 6 if it does not. The broker's own
 * exchanges are exit 2 unless `ownAllowed` (a binding to amq.topic may be removed; it may not).
 */
export async function existingExchange(
  client: AMQPClient,
  exchange: string,
  verb: string,
  { ownAllowed = false } = {},
): Promise<AMQPChannel> {
  if (exchange === "" || (exchange.startsWith("amq.") && !ownAllowed)) {
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
export async function attempt<T>(what: string, action: () => Promise<T>, refusal?: string): Promise<T> {
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
