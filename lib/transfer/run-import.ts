/**
 * A whole `kmq import`: the file checked end to end first (nothing is declared or published from
 * a file that fails a count or a checksum), the topology declared, then each queue's messages
 * published in order with confirms, the confirmed position kept in a progress file so the same
 * command resumes after a kill (import-progress.ts).
 */
import { brokerIdentity } from "../amqp/client-fixes.ts";
import { closeQuietly, connect } from "../amqp/connection.ts";
import { readyCount, SilentQueue } from "../amqp/ready-count.ts";
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { parseExact, toPlain } from "../messages/exact-json.ts";
import { InputError, showControls, UsageError } from "../term/errors.ts";
import { write } from "../term/output.ts";
import type { Log } from "../term/log.ts";
import { type ExportHeader, readExportFile } from "./export-file.ts";
import {
  declareDefinitions,
  type Depths,
  importPolicies,
  type Transform,
  transformed,
} from "./import-topology.ts";
import { ImportProgress } from "./import-progress.ts";
import type { CheckedFile, ImportIo, ImportOptions, QueuePart } from "./import-options.ts";
import { publishParts, RESUME_BOUND } from "./publish-parts.ts";
import { definitionsOf, type VhostDefinitions } from "./vhost-definitions.ts";

export type { ImportOptions } from "./import-options.ts";

const decoder = new TextDecoder();

/** Reads the whole file, checking every part; keeps the definitions and the parts' sizes. */
export async function checkFile(path: string): Promise<CheckedFile> {
  let header: ExportHeader | undefined;
  let definitions: VhostDefinitions | undefined;
  let definitionsLine: Uint8Array | undefined;
  let definitionsSum = "";
  const parts: QueuePart[] = [];
  for await (const e of readExportFile(path)) {
    if (e.kind === "header") header = e.header;
    else if (e.kind === "begin" && e.begin.part === "queue") {
      parts.push({ index: e.index, queue: e.begin.queue!, type: e.begin.type ?? "classic", messages: 0 });
    } else if (e.kind === "line") {
      const part = parts.at(-1);
      if (part?.index === e.index) part.messages++;
      else definitionsLine = e.bytes;
    } else if (e.kind === "end" && e.end.part === "definitions") {
      definitionsSum = e.end.sha256;
      if (!definitionsLine) throw new InputError(`${path}: the definitions part is empty`);
      try {
        definitions = definitionsOf(toPlain(parseExact(decoder.decode(definitionsLine))), "api");
      } catch {
        throw new InputError(`${path}: part ${e.index} (definitions) is not JSON definitions`);
      }
    }
  }
  if (!header) throw new InputError(`${path} is not a kmq export`);
  return { header, definitions, parts, exportId: `${header.created} ${definitionsSum}` };
}

export async function runImport(o: ImportOptions, io: ImportIo): Promise<void> {
  const checked = await checkFile(o.file);
  if (!checked.definitions) throw new InputError(`${o.file} holds no definitions part`);
  const defs = transformed(checked.definitions, o.transform, io.log);
  if (o.checkOnly) return await describe(checked, defs, io);
  const client = await connect({ broker: o.broker, name: "kmq import", log: io.log });
  try {
    const target = `${brokerIdentity(client).replace("\u0000", " vhost ")}`;
    const progress = await ImportProgress.load(
      o.progress ?? `${o.file}.import-progress`,
      checked.exportId,
      target,
    );
    const parts = selectedParts(checked.parts, o.transform);
    const { confirmed } = progress.state;
    if (o.messages && parts.length > 0 && parts.every((p) => (confirmed.get(p.target) ?? -1) >= p.messages)) {
      io.log.warn(
        `${o.file} was imported into ${target} already (${progress.path} says so): remove that file to import again`,
      );
      return;
    }
    const fresh = parts.filter((p) => !confirmed.has(p.target));
    // refused before anything is declared: a queue holding messages would mix them with the import
    if (o.messages && !o.append) await refuseNonEmpty(client, fresh, o.transform.queueType === "quorum");
    const policies = o.policies ? await importPolicies(o.broker, defs) : 0;
    const depths = await declareDefinitions(client, defs);
    io.log.warn(
      `declared ${defs.exchanges.filter((e) => !String(e.name).startsWith("amq.")).length} exchange(s), ` +
        `${defs.queues.length} queue(s), ${defs.bindings.length} binding(s)` +
        (o.policies
          ? `, ${policies} polic${policies === 1 ? "y" : "ies"}`
          : " (policies left out: --no-policies)"),
    );
    if (!o.messages) return;
    const resumed = new Set(parts.filter((p) => confirmed.has(p.target)).map((p) => p.target));
    if (resumed.size > 0) noteResume(progress, parts, io.log);
    await recordStart(progress, fresh, depths);
    await publishParts({ o, io, parts, progress, depths, resumed });
  } finally {
    await closeQuietly(client);
  }
}

/** --check: what the file holds, on stdout; every part passed its checks. */
async function describe(checked: CheckedFile, defs: VhostDefinitions, io: ImportIo): Promise<void> {
  const h = checked.header;
  const lines = [
    `export of vhost '${h.vhost}' from ${h.broker}, ${h.created} (${h.tool}, format ${h.kmq_export}): every part checks`,
    `definitions: ${defs.exchanges.length} exchange(s), ${defs.queues.length} queue(s), ` +
    `${defs.bindings.length} binding(s), ${defs.policies.length} polic${
      defs.policies.length === 1 ? "y" : "ies"
    }`,
    ...checked.parts.map((p) => `queue '${p.queue}' (${p.type}): ${p.messages} message(s)`),
  ];
  await write(io.stdout, new TextEncoder().encode(lines.map(showControls).join("\n") + "\n"));
}

/** The parts to publish, each with the name its queue has on the target. */
function selectedParts(parts: QueuePart[], t: Transform): (QueuePart & { target: string })[] {
  const only = new Set(t.only);
  return parts.filter((p) => only.size === 0 || only.has(p.queue))
    .map((p) => ({ ...p, target: t.renames.get(p.queue) ?? p.queue }));
}

/** A first import adds to empty queues only, unless --append. */
async function refuseNonEmpty(
  client: AMQPClient,
  parts: (QueuePart & { target: string })[],
  allQuorum: boolean,
): Promise<void> {
  for (const p of parts) {
    if (p.type === "stream") continue;
    const ch = await client.channel();
    // a missing queue holds nothing; a silent quorum leader is not an empty queue (exit 4)
    const held = await readyCount(ch, p.target, { quorum: allQuorum || p.type === "quorum" })
      .catch((err) => {
        if (err instanceof SilentQueue) throw err;
        return 0;
      });
    await ch.close().catch(() => {});
    if (held > 0) {
      throw new UsageError(
        `queue '${p.target}' on the target already holds ${held} message(s): the import would add ` +
          `${p.messages} behind them; empty it first, or give --append to add anyway`,
      );
    }
  }
}

/** What each queue held when the import began, for a resume to count against. */
async function recordStart(
  progress: ImportProgress,
  parts: (QueuePart & { target: string })[],
  depths: Depths,
): Promise<void> {
  for (const p of parts) {
    progress.state.before.set(p.target, depths.get(p.target)?.messages ?? 0);
    progress.state.confirmed.set(p.target, 0);
  }
  await progress.save();
}

function noteResume(progress: ImportProgress, parts: (QueuePart & { target: string })[], log: Log): void {
  const done = parts.reduce((n, p) => n + (progress.state.confirmed.get(p.target) ?? 0), 0);
  const all = parts.reduce((n, p) => n + p.messages, 0);
  log.warn(
    `resuming the import recorded in ${progress.path}: ${done} of ${all} message(s) were confirmed; ` +
      `carrying on from there (at most ${RESUME_BOUND} per queue may have been sent after the last record)`,
  );
}
