/**
 * A whole `kmq consume`: the loops (one per connection: print-loop.ts or command-loop.ts), the
 * reconnects between them, --filter's sieve, and the exit that says how the run went.
 */
import { SilentQueue } from "../amqp/ready-count.ts";
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { accessSync, constants, statSync } from "node:fs";
import process from "node:process";
import { closeQuietly, connect, failovers } from "../amqp/connection.ts";
import { declareTopology, topologyFrom } from "../amqp/declarations.ts";
import { guardRequeues } from "../amqp/queue-facts.ts";
import type { Sieve } from "../messages/filter.ts";
import { classifyError, ExitCode, KmqError, UsageError } from "../term/errors.ts";
import { exactJson } from "../messages/fields.ts";
import { CommandLoop } from "./command-loop.ts";
import { readingWindow } from "./reading-window.ts";
import type { ConsumeIo, ConsumeLoop, ConsumeOptions } from "./consume-loop.ts";
import { PrintLoop } from "./print-loop.ts";

/** What all the loops of one `kmq consume` (one per connection) added up to. */
interface Totals {
  handled: number;
  failed: number;
  readerGone: boolean;
}

/**
 * `kmq consume`: prints messages (or runs a command per message) until --count, --idle-timeout,
 * a signal, or the reader going away; reconnects when the connection drops. Throws the exit
 * code's error when the run did not go as asked (a signal, failed commands, a closed stdout).
 */
export async function consumeRun(o: ConsumeOptions, io: ConsumeIo): Promise<void> {
  const sieve = await sieveFor(o);
  try {
    await consumeAll(o, io, sieve);
  } finally {
    if (sieve) reportSieve(sieve, io);
  }
}

/**
 * --filter: compiled before connecting (a bad expression is exit 2 with nothing touched). Messages
 * that do not match are acked where they are copies (a tap's server-named or exclusive queue, a
 * stream, which keeps them anyway) or with --ack-unmatched; on a named queue they are held unacked
 * and go back to it, in their order, when kmq stops.
 */
async function sieveFor(o: ConsumeOptions): Promise<Sieve | undefined> {
  if (o.filter === undefined) return undefined;
  const { MessageFilter } = await import("../messages/filter.ts");
  const t = o.topology;
  const copies = t.queue === "" || t.exclusive || t.queueArguments?.["x-queue-type"] === "stream" ||
    o.consumerArguments["x-stream-offset"] !== undefined;
  const hold = !copies && !o.ackUnmatched;
  if (hold && !o.ack) {
    throw new UsageError(
      `--filter with --no-ack on queue '${t.queue}' would lose the messages that do not match (the broker ` +
        "removes each as it is delivered): drop --no-ack, or add --ack-unmatched to drop them knowingly",
    );
  }
  return { filter: new MessageFilter(o.filter), hold, unmatched: 0 };
}

function reportSieve(s: Sieve, io: ConsumeIo): void {
  const went = s.hold ? "held, then left in the queue" : "acked unseen";
  io.log.info(`--filter: ${s.unmatched} message(s) did not match (${went})`);
  if (s.filter.errors > 0) {
    io.log.info(
      `--filter could not be evaluated on ${s.filter.errors} of them (counted as not matching), the first: ${s.filter.firstError}`,
    );
  }
}

async function consumeAll(asked: ConsumeOptions, io: ConsumeIo, sieve?: Sieve): Promise<void> {
  let o = asked;
  if (o.command.length > 0) checkCommand(o.command[0]!);
  const topology = topologyFrom(o.topology);
  const totals: Totals = { handled: 0, failed: 0, readerGone: false };
  const first = await connectAtStart(o, io);
  if (!first) return outcome(o, io, totals); // stopped while waiting for the broker
  let client = first;
  let previousQueue: string | undefined;
  while (true) {
    let loop: ConsumeLoop | undefined;
    let ended = false;
    try {
      const { channel, queue } = await declareTopology(client, topology, io.log, { broker: o.broker });
      if (queue === undefined) throw new Error("consume needs a queue");
      if (previousQueue !== undefined && queue !== previousQueue) {
        io.log.warn(`the server-named queue '${previousQueue}' is gone; consuming from '${queue}' now`);
      }
      if (sieve?.hold && previousQueue === undefined) {
        await guardRequeues(client, queue, o.broker, "--filter", o.acceptDeliveryCount, io.log);
      }
      if (o.window && previousQueue === undefined) {
        const window = await windowOf(client, queue, o, io);
        if (!window) return outcome(o, io, totals, queue);
        o = window;
      }
      previousQueue = queue;
      // --count counts across reconnects
      const count = o.count === undefined ? undefined : o.count - totals.handled;
      const Loop = o.command.length > 0 ? CommandLoop : PrintLoop;
      loop = new Loop(channel, queue, { ...o, count }, io, sieve);
      await loop.run();
      ended = true;
    } catch (err) {
      const e = err instanceof KmqError ? err : classifyError(err, "consuming");
      if (io.stop.aborted) return outcome(o, io, addUp(totals, loop), previousQueue, e);
      if (!retryable(e, io)) throw e;
    } finally {
      addUp(totals, loop);
      await closeQuietly(client);
    }
    if (ended) {
      readAll(o, io, totals, previousQueue);
      return outcome(o, io, totals, previousQueue);
    }
    const next = await reconnect(o, io);
    if (!next) return outcome(o, io, totals, previousQueue); // stopped while waiting for the broker
    client = next;
  }
}

/**
 * The options for reading the window --exit-at-end, --last or --until asked for (resolved once, on
 * the first connection); undefined when there is nothing to read.
 */
async function windowOf(
  client: AMQPClient,
  queue: string,
  o: ConsumeOptions,
  io: ConsumeIo,
): Promise<ConsumeOptions | undefined> {
  const w = await readingWindow(client, queue, {
    ...o.window!,
    offset: o.consumerArguments["x-stream-offset"],
    count: o.count,
  }, o.broker);
  if (w.empty) {
    const asked = o.window!.until !== undefined
      ? " before --until"
      : o.window!.exitAtEnd
      ? " (--exit-at-end)"
      : "";
    io.log.warn(`queue '${queue}' holds nothing to read${asked}`);
    return undefined;
  }
  const offset = w.offset === undefined ? {} : { "x-stream-offset": exactJson(w.offset) };
  return {
    ...o,
    count: w.count,
    idleTimeout: o.idleTimeout ?? w.idleTimeout,
    consumerArguments: { ...o.consumerArguments, ...offset },
    atStart: w.atStart,
  };
}

/** --exit-at-end on a queue: says so when other consumers took some of what it held at the start. */
function readAll(o: ConsumeOptions, io: ConsumeIo, t: Totals, queue?: string): void {
  if (o.atStart === undefined || t.handled >= Math.min(o.atStart, o.count ?? Infinity)) return;
  io.log.warn(
    `read ${t.handled} of the ${o.atStart} message(s) queue '${queue}' held at the start: ` +
      "the others went to other consumers or were removed",
  );
}

function addUp(totals: Totals, loop?: ConsumeLoop): Totals {
  if (!loop) return totals;
  totals.handled += loop.handled;
  totals.failed += loop.failed;
  totals.readerGone ||= loop.end === "readerGone";
  loop.handled = loop.failed = 0; // counted once, whichever path gets here
  return totals;
}

/**
 * A lost connection is worth another one; so is a channel the broker closed because a command
 * outlived its consumer_timeout (the message comes again: at-least-once). Anything else is final.
 */
function retryable(e: KmqError, io: ConsumeIo): boolean {
  if (/delivery acknowledgement on channel \d+ timed out/.test(e.message)) {
    const ms = /Timeout value used: (\d+)/.exec(e.message)?.[1];
    io.log.warn(
      `the broker's consumer_timeout${ms ? ` (${ms} ms)` : ""} ran out while a message was in hand: ` +
        "it will be delivered again; set --exec-timeout below it. Reconnecting",
    );
    return true;
  }
  if (e.exitCode !== ExitCode.unreachable || e instanceof SilentQueue) return false;
  io.log.warn(`${e.message.replace(/; check that.*$/, "")}; reconnecting`);
  return true;
}

/** How the run ended, as an exit: 0, or the error that names why not. */
function outcome(o: ConsumeOptions, io: ConsumeIo, t: Totals, queue?: string, error?: KmqError): void {
  const did = `${t.handled} message(s) ${o.command.length > 0 ? "handled" : "written"}${
    o.ack ? " and settled" : ""
  }`;
  const moved = failovers(o.broker);
  const failed = (t.failed > 0 ? `, ${t.failed} not handled (see above)` : "") +
    (moved ? `, ${moved} failover(s) to another node` : "");
  if (moved && !io.stop.aborted && !t.readerGone && t.failed === 0) {
    io.log.warn(`${did} with ${moved} failover(s) to another node`);
  }
  if (io.stop.aborted) {
    const signal = String(io.stop.reason);
    // a server-named queue is auto-delete too (its name is the broker's amq.gen-…)
    const rest = o.topology.autoDelete || queue?.startsWith("amq.gen-")
      ? "the queue is deleted with this consumer"
      : "the rest stay in the queue";
    throw new KmqError(
      signal === "SIGINT" ? ExitCode.interrupted : ExitCode.terminated,
      `stopped by ${signal}: ${did}${failed}; ${rest}${error ? ` (${error.message})` : ""}`,
    );
  }
  if (t.readerGone) {
    throw new KmqError(
      ExitCode.readerGone,
      `the reader of stdout went away after ${did}: the messages not written went back to the queue ` +
        "(use -n to take a set number)",
    );
  }
  if (t.failed > 0) {
    throw new KmqError(
      ExitCode.notHandled,
      `${t.failed} message(s) not handled: ${
        o.command.length > 0
          ? "the command failed for them or their body did not decode (rejected, requeued or left in the queue"
          : "their body did not decode or their type was refused (left in the queue or rejected"
      }, see above); ${did}`,
    );
  }
}

/**
 * Fails before any message is taken when the command cannot be run: a path that is not an
 * executable file, or a name no directory of PATH holds.
 */
function checkCommand(file: string): void {
  const runnable = (path: string) => {
    try {
      accessSync(path, constants.X_OK);
      return statSync(path).isFile();
    } catch {
      return false;
    }
  };
  if (file.includes("/")) {
    if (!runnable(file)) {
      throw new UsageError(`command '${file}' is not an executable file: check the command after --`);
    }
    return;
  }
  const dirs = (process.env.PATH ?? "").split(":").map((d) => d || ".");
  if (!dirs.some((d) => runnable(`${d}/${file}`))) {
    throw new UsageError(`command '${file}' not found in PATH: check the command after --`);
  }
}

/**
 * The first connection: a broker that is down (or restarting) when the consumer starts is waited
 * for as after a dropped connection, within --retry-timeout, and kmq says so.
 */
async function connectAtStart(o: ConsumeOptions, io: ConsumeIo): Promise<AMQPClient | undefined> {
  try {
    return await connect({ broker: o.broker, name: "kmq consume", log: io.log });
  } catch (err) {
    // a certificate kmq does not trust will not become trusted by waiting
    if (
      !(err instanceof KmqError) || err.exitCode !== ExitCode.unreachable ||
      /TLS certificate/.test(err.message)
    ) {
      throw err;
    }
    const limit = o.retryTimeout === undefined
      ? "until it answers (--retry-timeout to give up, Ctrl-C to stop)"
      : `for up to --retry-timeout ${o.retryTimeout} s`;
    io.log.warn(`${err.message.replace(/; check that.*$/, "")}; retrying ${limit}`);
    return reconnect(o, io);
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
