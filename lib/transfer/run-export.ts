/**
 * A whole `kmq export`: the vhost's definitions, then each chosen queue's messages, into one file
 * (export-file.ts), with a live line on a terminal and a summary per queue.
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { rename, rm, stat } from "node:fs/promises";
import { brokerIdentity, brokerVersion } from "../amqp/client-fixes.ts";
import { type BrokerOptions, closeQuietly, connect } from "../amqp/connection.ts";
import { plainJson } from "../messages/exact-json.ts";
import { ExitCode, KmqError, UsageError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import { liveLine, perSecond, type ProgressStream } from "../term/progress.ts";
import { VERSION } from "../term/version.ts";
import { BatchedFile } from "./batched-file.ts";
import { PartFramer } from "./export-file.ts";
import { exportQueue, type QueueReadResult } from "./queue-export.ts";
import { nameOf, queueTypeOf, readDefinitions, type VhostDefinitions } from "./vhost-definitions.ts";

export interface ExportOptions {
  broker: BrokerOptions;
  file: string;
  /** Queues to export (empty, and no match: every queue of the vhost). */
  queues: string[];
  /** Queues whose names match, too. */
  match?: RegExp;
  messages: boolean;
  drain: boolean;
  force: boolean;
}

export interface ExportIo {
  log: Log;
  stop: AbortSignal;
  stderr: ProgressStream;
}

const encoder = new TextEncoder();

export async function runExport(o: ExportOptions, io: ExportIo): Promise<void> {
  // written beside the file and renamed at the end: FILE is never a half-written export
  const partial = `${o.file}.partial`;
  await checkTarget(o.file, o.force);
  await checkNoPartial(partial);
  const client = await connect({ broker: o.broker, name: "kmq export", log: io.log });
  let file: BatchedFile | undefined;
  let created = false;
  let complete = false;
  try {
    const defs = await readDefinitions(client, o.broker, o.queues, io.log, o.match);
    file = await openFile(partial);
    created = true;
    const framer = new PartFramer((bytes) => file!.append(bytes));
    framer.header({
      created: new Date().toISOString(),
      vhost: client.vhost,
      broker: `RabbitMQ ${brokerVersion(client) ?? "?"} ${brokerIdentity(client).split("\u0000")[0]}`,
      tool: `kmq ${VERSION}`,
    });
    writeDefinitions(framer, defs);
    const results = o.messages ? await exportMessages(client, o, io, defs, file, framer) : [];
    framer.finish();
    await file.sync();
    await file.close();
    file = undefined;
    await rename(partial, o.file);
    complete = true;
    summarize(o, io.log, defs, results);
  } finally {
    await closeQuietly(client);
    if (file) await file.close().catch(() => {});
    // only this run's own partial file: another's may hold what a --drain took
    if (created && !complete && !o.drain) await rm(partial, { force: true });
    if (created && !complete && o.drain) {
      io.log.warn(
        `${partial} holds what --drain took off the queues so far (acked once written): keep it; ` +
          "'kmq import' refuses it, but each queue part it completed can be read (docs/export-format.md)",
      );
    }
  }
}

/** A partial file left by an export that did not finish is never replaced, --force or not. */
async function checkNoPartial(path: string): Promise<void> {
  if (await stat(path).then(() => true, () => false)) throw partialExists(path);
}

const partialExists = (path: string) =>
  new UsageError(
    `${path} exists: an export that did not finish left it (after --drain it holds the messages it took); ` +
      "move it away first",
  );

async function openFile(path: string): Promise<BatchedFile> {
  try {
    return await BatchedFile.create(path, true);
  } catch (err) {
    if ((err as { code?: string }).code === "EEXIST") throw partialExists(path);
    throw new KmqError(ExitCode.badInput, `cannot write ${path}: ${(err as Error).message}`);
  }
}

/** Refused before anything is read: an export never replaces a file unless --force. */
async function checkTarget(path: string, force: boolean): Promise<void> {
  if (force) return;
  if (await stat(path).then(() => true, () => false)) {
    throw new UsageError(`${path} exists: choose another name, or give --force to replace it`);
  }
}

function writeDefinitions(framer: PartFramer, defs: VhostDefinitions): void {
  const { from, ...rest } = defs;
  framer.begin({ part: "definitions", from });
  framer.line(encoder.encode(plainJson(Object.assign(Object.create(null), rest))));
  framer.end();
}

interface QueueDone extends QueueReadResult {
  queue: string;
  type: string;
  bytes: number;
}

async function exportMessages(
  client: AMQPClient,
  o: ExportOptions,
  io: ExportIo,
  defs: VhostDefinitions,
  file: BatchedFile,
  framer: PartFramer,
): Promise<QueueDone[]> {
  const done: QueueDone[] = [];
  const started = performance.now();
  let total = 0;
  let current = { queue: "", messages: 0 };
  const clear = liveLine(io.stderr, () => [
    `kmq: export: queue '${current.queue}' ${current.messages} message(s); in all ${total} (${
      perSecond(total, started)
    } msg/s), ${mib(file.written)}`,
    `kmq: export '${current.queue}' ${current.messages}, in all ${total}`,
  ]);
  try {
    for (const q of defs.queues) {
      const queue = nameOf(q);
      const type = queueTypeOf(q);
      if (type === "quorum" && !o.drain) await refuseIfConsumed(client, queue);
      current = { queue, messages: 0 };
      const before = file.written;
      framer.begin({ part: "queue", queue, type });
      const result = await exportQueue({
        client,
        queue,
        type,
        broker: o.broker,
        log: io.log,
        stop: io.stop,
        file,
        framer,
        drain: o.drain,
        onMessage: () => {
          current.messages++;
          total++;
        },
      });
      framer.end();
      done.push({ ...result, queue, type, bytes: file.written - before });
    }
  } finally {
    clear();
  }
  return done;
}

/** A quorum queue goes round once: a consumer taking messages meanwhile would make that uncountable. */
async function refuseIfConsumed(client: AMQPClient, queue: string): Promise<void> {
  const ch = await client.channel();
  const { consumerCount } = await ch.queueDeclare(queue, { passive: true });
  await ch.close().catch(() => {});
  if (consumerCount > 0) {
    throw new KmqError(
      ExitCode.brokerRefused,
      `quorum queue '${queue}' has ${consumerCount} consumer(s): export sends a quorum queue round once ` +
        "(each message to its tail), which a consumer taking messages would upset; stop them, " +
        "or export with --drain (takes the messages off the queue)",
    );
  }
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function summarize(o: ExportOptions, log: Log, defs: VhostDefinitions, done: QueueDone[]): void {
  log.warn(
    `exported to ${o.file}: ${defs.exchanges.length} exchange(s), ${defs.queues.length} queue(s), ` +
      `${defs.bindings.length} binding(s), ${defs.policies.length} polic${
        defs.policies.length === 1 ? "y" : "ies"
      }` + (defs.from === "amqp" ? " (queues only: no management API)" : ""),
  );
  for (const d of done) {
    const what = d.messages === 0
      ? "empty"
      : o.drain && d.type !== "stream"
      ? "taken off the queue (--drain)"
      : d.type === "classic"
      ? `put back in order, held from other consumers for ${((d.heldMs ?? 0) / 1000).toFixed(1)} s`
      : d.type === "quorum"
      ? "sent round the queue once, in order (delivery counts start again at 0)"
      : "read from the first offset (a stream keeps its messages)";
    const short = d.messages < d.atStart ? ` of ${d.atStart} (others took the rest meanwhile)` : "";
    log.warn(`  queue '${d.queue}' (${d.type}): ${d.messages} message(s)${short}, ${mib(d.bytes)}; ${what}`);
  }
}
