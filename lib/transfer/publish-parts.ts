/**
 * Import's second pass over the file: each queue part's records published to its queue (through
 * the default exchange, so no binding fans them out) in order, with confirms. The progress file
 * records how many of a part the target confirmed; no more than RESUME_BOUND messages are ever
 * sent past the last record, so a kill duplicates at most that many — and a resume that finds the
 * unrecorded ones already in a queue nobody reads from skips them instead.
 */
import { DEFAULT_EXCHANGE_ONLY } from "../amqp/declarations.ts";
import { boundStop, Publisher } from "../amqp/publisher.ts";
import { parseRecord, RecordError } from "../messages/records.ts";
import { InputError } from "../term/errors.ts";
import { liveLine, perSecond } from "../term/progress.ts";
import { readExportFile } from "./export-file.ts";
import type { Depths } from "./import-topology.ts";
import type { ImportProgress } from "./import-progress.ts";
import { checkNotStopped, type ImportIo, type ImportOptions, type QueuePart } from "./import-options.ts";

/** Messages sent past the last recorded confirm at most: the most a kill can duplicate. */
export const RESUME_BOUND = 2000;
/** Unconfirmed messages in flight. */
const WINDOW = 500;
/** Confirms gathered before the progress file is written again. */
const SAVE_EVERY = 500;

type Part = QueuePart & { target: string };

export interface PublishContext {
  o: ImportOptions;
  io: ImportIo;
  parts: Part[];
  progress: ImportProgress;
  depths: Depths;
  /** The target queues whose import is resumed (their progress was recorded). */
  resumed: Set<string>;
}

/** The first n of a part confirmed, from confirms that may come out of order. */
class Watermark {
  private ahead = new Set<number>();
  constructor(public upTo: number) {}
  settle(i: number): void {
    if (i !== this.upTo) return void this.ahead.add(i);
    this.upTo++;
    while (this.ahead.delete(this.upTo)) this.upTo++;
  }
}

/** Where a part starts: after what was recorded, and after what a resume finds already there. */
function startOf(ctx: PublishContext, p: Part): { start: number; found: number; unsure: boolean } {
  const recorded = ctx.progress.state.confirmed.get(p.target) ?? 0;
  if (!ctx.resumed.has(p.target) || recorded >= p.messages) {
    return { start: recorded, found: 0, unsure: false };
  }
  const depth = ctx.depths.get(p.target);
  const before = ctx.progress.state.before.get(p.target) ?? 0;
  const extra = depth === undefined ? -1 : depth.messages - before - recorded;
  // only a queue nobody reads from counts what arrived: a stream's count is not its messages
  const countable = p.type !== "stream" && depth?.consumers === 0;
  if (countable && extra >= 0 && extra <= Math.min(RESUME_BOUND, p.messages - recorded)) {
    return { start: recorded + extra, found: extra, unsure: false };
  }
  return { start: recorded, found: 0, unsure: recorded > 0 || extra !== 0 };
}

export async function publishParts(ctx: PublishContext): Promise<void> {
  const { o, io, progress } = ctx;
  const publisher = new Publisher({
    broker: o.broker,
    topology: DEFAULT_EXCHANGE_ONLY,
    mandatory: true,
    confirm: true,
    retryTimeout: 60,
    log: io.log,
    window: WINDOW,
    name: "kmq import",
  });
  await publisher.open();
  const byIndex = new Map(ctx.parts.map((p) => [p.index, p]));
  const total = ctx.parts.reduce((n, p) => n + p.messages, 0);
  const started = performance.now();
  let sent = 0;
  let found = 0;
  let unsure = 0;
  let part: { p: Part; mark: Watermark; recorded: number; start: number; lineIdx: number } | undefined;
  const clear = liveLine(io.stderr, () => [
    `kmq: import: queue '${part?.p.target ?? ""}' ${part?.mark.upTo ?? 0}/${part?.p.messages ?? 0}; ` +
    `sent ${sent} of ${total} (${perSecond(sent, started)} msg/s)`,
    `kmq: import '${part?.p.target ?? ""}' ${part?.mark.upTo ?? 0}/${part?.p.messages ?? 0}`,
  ]);
  const stopTimer = boundStop(publisher, o.stopTimeout, io.stop);
  const record = async () => {
    if (!part) return;
    const upTo = part.mark.upTo;
    progress.state.confirmed.set(part.p.target, upTo);
    const saved = part;
    await progress.save();
    saved.recorded = Math.max(saved.recorded, upTo);
  };
  try {
    for await (const e of readExportFile(o.file)) {
      if (e.kind === "begin") {
        const p = byIndex.get(e.index);
        if (!p) continue;
        const s = startOf(ctx, p);
        found += s.found;
        if (s.unsure) unsure += Math.min(RESUME_BOUND, p.messages - s.start);
        part = { p, mark: new Watermark(s.start), recorded: s.start, start: s.start, lineIdx: 0 };
        if (s.found > 0) await record();
        continue;
      }
      if (e.kind === "header" || !part || e.index !== part.p.index) continue;
      if (e.kind === "end") {
        await publisher.drain();
        await record();
        publisher.check();
        part = undefined;
        continue;
      }
      if (e.kind !== "line") continue;
      const i = part.lineIdx++;
      if (i < part.start) continue;
      checkNotStopped(io.stop, "");
      if (i - part.recorded >= RESUME_BOUND) {
        await publisher.drain();
        await record();
      }
      const current = part;
      await publisher.publish({
        exchange: "",
        routingKey: current.p.target,
        ...recordOf(e.bytes, e.lineNo, o.file),
        origin: `message ${i + 1} of queue '${current.p.queue}' (line ${e.lineNo})`,
        settled: (delivered) => {
          if (!delivered) return; // the watermark stops before it: a resume sends it again
          current.mark.settle(i);
          if (current.mark.upTo - current.recorded >= SAVE_EVERY) void record().catch(() => {});
        },
      });
      sent++;
      if (publisher.counts.nacked + publisher.counts.returned > 0) {
        await publisher.drain();
        await record();
        publisher.check();
      }
    }
  } catch (err) {
    // what was confirmed is recorded, whatever stopped the import
    await publisher.drain().catch(() => {});
    await record().catch(() => {});
    if (io.stop.aborted) checkNotStopped(io.stop, `${sent} message(s) sent, the confirmed ones recorded`);
    throw err;
  } finally {
    stopTimer.dispose();
    clear();
    await publisher.close();
  }
  summary(ctx, sent, found, unsure, started);
}

const decoder = new TextDecoder();

function recordOf(bytes: Uint8Array, lineNo: number, file: string) {
  try {
    const r = parseRecord(decoder.decode(bytes));
    return { properties: r.properties, body: r.body };
  } catch (err) {
    if (!(err instanceof RecordError)) throw err;
    throw new InputError(`${file} line ${lineNo}: ${err.message}`);
  }
}

function summary(ctx: PublishContext, sent: number, found: number, unsure: number, started: number): void {
  const { io, parts } = ctx;
  io.log.warn(
    `imported ${parts.reduce((n, p) => n + p.messages, 0)} message(s) into ${parts.length} queue(s); ` +
      `sent ${sent} this run (${perSecond(sent, started)} msg/s)`,
  );
  if (ctx.resumed.size > 0) {
    io.log.warn(
      found > 0 || unsure === 0
        ? `resumed: ${found} message(s) sent before the stop were found in their queues and not sent again; ` +
          `duplicates: ${unsure === 0 ? 0 : `at most ${unsure}`}`
        : `resumed: duplicates: at most ${unsure} (a queue read by consumers, or a stream, cannot be counted)`,
    );
  }
}
