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

interface OpenPart {
  p: Part;
  mark: Watermark;
  /** Confirmed messages the progress file holds. */
  recorded: number;
  start: number;
  lineIdx: number;
}

export async function publishParts(ctx: PublishContext): Promise<void> {
  const run = new PartsRun(ctx);
  await run.publisher.open();
  const stopTimer = boundStop(run.publisher, ctx.o.stopTimeout, ctx.io.stop);
  const clear = liveLine(ctx.io.stderr, () => run.progressLine());
  try {
    for await (const e of readExportFile(ctx.o.file)) {
      if (e.kind === "begin") await run.begin(e.index);
      else if (e.kind === "header" || e.index !== run.part?.p.index) continue;
      else if (e.kind === "end") await run.end();
      else await run.line(e.bytes, e.lineNo);
    }
  } catch (err) {
    // what was confirmed is recorded, whatever stopped the import
    await run.publisher.drain().catch(() => {});
    await run.record().catch(() => {});
    if (ctx.io.stop.aborted) {
      checkNotStopped(ctx.io.stop, `${run.sent} message(s) sent, the confirmed ones recorded`);
    }
    throw err;
  } finally {
    stopTimer.dispose();
    clear();
    await run.publisher.close();
  }
  summary(ctx, run.sent, run.found, run.unsure, run.started);
}

/** One import's publishing: the part open, its watermark, and when the progress file is written. */
class PartsRun {
  readonly publisher: Publisher;
  readonly started = performance.now();
  sent = 0;
  sentBytes = 0;
  found = 0;
  unsure = 0;
  part?: OpenPart;
  private readonly byIndex: Map<number, Part>;
  private readonly total: number;
  private saving = false;

  constructor(private readonly ctx: PublishContext) {
    this.publisher = new Publisher({
      broker: ctx.o.broker,
      topology: DEFAULT_EXCHANGE_ONLY,
      mandatory: true,
      confirm: true,
      retryTimeout: 60,
      log: ctx.io.log,
      window: WINDOW,
      name: "kmq import",
    });
    this.byIndex = new Map(ctx.parts.map((p) => [p.index, p]));
    this.total = ctx.parts.reduce((n, p) => n + p.messages, 0);
  }

  progressLine(): string[] {
    const where = `'${this.part?.p.target ?? ""}' ${this.part?.mark.upTo ?? 0}/${this.part?.p.messages ?? 0}`;
    return [
      `kmq: import: queue ${where}; sent ${this.sent} of ${this.total} (${
        perSecond(this.sent, this.started)
      } msg/s)`,
      `kmq: import ${where}`,
    ];
  }

  async begin(index: number): Promise<void> {
    const p = this.byIndex.get(index);
    if (!p) return;
    const s = startOf(this.ctx, p);
    this.found += s.found;
    if (s.unsure) this.unsure += Math.min(RESUME_BOUND, p.messages - s.start);
    this.part = { p, mark: new Watermark(s.start), recorded: s.start, start: s.start, lineIdx: 0 };
    if (s.found > 0) await this.record();
  }

  async end(): Promise<void> {
    await this.publisher.drain();
    await this.record();
    this.publisher.check();
    this.part = undefined;
  }

  async line(bytes: Uint8Array, lineNo: number): Promise<void> {
    const part = this.part!;
    const i = part.lineIdx++;
    if (i < part.start) return;
    checkNotStopped(this.ctx.io.stop, "");
    // never more than RESUME_BOUND sent past the record: what a kill can duplicate
    if (i - part.recorded >= RESUME_BOUND) {
      await this.publisher.drain();
      await this.record();
    }
    await this.publisher.publish({
      exchange: "",
      routingKey: part.p.target,
      ...recordOf(bytes, lineNo, this.ctx.o.file),
      origin: `message ${i + 1} of queue '${part.p.queue}' (line ${lineNo})`,
      settled: (delivered) => {
        if (!delivered) return; // the watermark stops before it: a resume sends it again
        part.mark.settle(i);
        this.saveSoon();
      },
    });
    this.sent++;
    this.sentBytes += bytes.length + 1;
    const { nacked, returned } = this.publisher.counts;
    if (nacked + returned > 0) await this.end(); // check() throws, naming them
  }

  /** Writes the open part's confirmed count to the progress file. */
  async record(): Promise<void> {
    const part = this.part;
    if (!part) return;
    const upTo = part.mark.upTo;
    this.ctx.progress.state.confirmed.set(part.p.target, upTo);
    await this.ctx.progress.save();
    part.recorded = Math.max(part.recorded, upTo);
  }

  /** One save at a time from confirms: each is an fsync, and a queue of them would hold the bound back. */
  private saveSoon(): void {
    if (this.saving || !this.part || this.part.mark.upTo - this.part.recorded < SAVE_EVERY) return;
    this.saving = true;
    this.record().catch(() => {}).finally(() => {
      this.saving = false;
      this.saveSoon();
    });
  }
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
