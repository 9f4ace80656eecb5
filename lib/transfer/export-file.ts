/**
 * The file `kmq export` writes and `kmq import` reads (docs/export-format.md): JSON Lines, one
 * header line, then parts — the definitions, and one per queue — each framed by a begin line and
 * an end line that counts its lines and bytes and holds the SHA-256 of them, then a last line
 * that counts the parts. A file cut short, changed or shuffled fails a count or a checksum, and
 * the error names the part.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { fromLines } from "../messages/sources.ts";
import { InputError } from "../term/errors.ts";

export const FORMAT_VERSION = 1;
/** A record holds one message (128 MiB at most, base64 and properties around it). */
const MAX_LINE = 192 * 1024 * 1024;

export interface ExportHeader {
  kmq_export: number;
  created: string;
  vhost: string;
  broker: string;
  tool: string;
}

export type PartKind = "definitions" | "queue";

export interface PartBegin {
  part: PartKind;
  begin: true;
  /** The queue's name (queue parts). */
  queue?: string;
  /** classic, quorum or stream (queue parts). */
  type?: string;
  /** Where the definitions came from: "api" (the management API) or "amqp" (queues only). */
  from?: string;
}

export interface PartEnd {
  part: PartKind;
  end: true;
  queue?: string;
  lines: number;
  bytes: number;
  sha256: string;
}

const encoder = new TextEncoder();
const NEWLINE = encoder.encode("\n");

/** Frames what is written into parts and keeps each part's tally. */
export class PartFramer {
  private hash?: Hash;
  private lines = 0;
  private bytes = 0;
  private open?: PartBegin;
  private parts = 0;

  constructor(private readonly emit: (bytes: Uint8Array) => void) {}

  header(h: Omit<ExportHeader, "kmq_export">): void {
    this.emitJson({ kmq_export: FORMAT_VERSION, ...h });
  }

  begin(p: Omit<PartBegin, "begin">): void {
    if (this.open) throw new Error(`part ${this.open.part} is still open`);
    this.open = { ...p, begin: true };
    this.emitJson(this.open);
    this.hash = createHash("sha256");
    this.lines = 0;
    this.bytes = 0;
  }

  /** One line of the open part (its JSON text, without the newline). */
  line(json: Uint8Array): void {
    if (!this.hash) throw new Error("no part is open");
    this.hash.update(json);
    this.hash.update(NEWLINE);
    this.lines++;
    this.bytes += json.length + 1;
    this.emit(json);
    this.emit(NEWLINE);
  }

  end(): PartEnd {
    if (!this.open || !this.hash) throw new Error("no part is open");
    const end: PartEnd = {
      part: this.open.part,
      end: true,
      ...(this.open.queue !== undefined ? { queue: this.open.queue } : {}),
      lines: this.lines,
      bytes: this.bytes,
      sha256: this.hash.digest("hex"),
    };
    this.emitJson(end);
    this.open = undefined;
    this.hash = undefined;
    this.parts++;
    return end;
  }

  /** The last line: how many parts the file holds, so a file cut between parts is seen. */
  finish(): void {
    this.emitJson({ end: true, parts: this.parts });
  }

  private emitJson(v: unknown): void {
    this.emit(encoder.encode(JSON.stringify(v)));
    this.emit(NEWLINE);
  }
}

/** What a reader of the file sees, in order; every part is checked as its end line is read. */
export type FileEvent =
  | { kind: "header"; header: ExportHeader }
  | { kind: "begin"; begin: PartBegin; index: number }
  | { kind: "line"; bytes: Uint8Array; lineNo: number; index: number }
  | { kind: "end"; end: PartEnd; index: number };

const decoder = new TextDecoder("utf-8", { fatal: true });

function jsonLine(bytes: Uint8Array, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new InputError(`${where} is not a JSON line: the file is damaged`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new InputError(`${where} is not a JSON object: the file is damaged`);
  }
  return v as Record<string, unknown>;
}

/** How a part is named in errors: "part 3 (queue 'orders')". */
export function partName(index: number, begin: PartBegin): string {
  return `part ${index} (${begin.part === "queue" ? `queue '${begin.queue}'` : "definitions"})`;
}

/**
 * Reads an export file as events, checking its framing, and each part's line count, bytes and
 * SHA-256 at the part's end line: a damaged part throws InputError (exit 3) naming it before any
 * event after its last line is given — so a caller that acts on a part only once its end came
 * never acts on a damaged one.
 */
export async function* readExportFile(path: string): AsyncGenerator<FileEvent> {
  const where = (n: number) => `${path} line ${n}`;
  let lineNo = 0;
  let index = 0;
  let open: { begin: PartBegin; hash: Hash; lines: number; bytes: number } | undefined;
  let finished = false;
  let stream: AsyncIterable<Uint8Array>;
  try {
    stream = createReadStream(path, { highWaterMark: 1024 * 1024 });
  } catch (err) {
    throw new InputError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    for await (const line of fromLines(stream, MAX_LINE)) {
      lineNo++;
      if (line.unterminated) {
        const inPart = open
          ? `${partName(index, open.begin)} is cut off at line ${lineNo}`
          : `line ${lineNo} is cut off`;
        throw new InputError(`${path}: ${inPart}: the file is truncated (nothing from this part is used)`);
      }
      if (finished) {
        throw new InputError(`${where(lineNo)} follows the file's last line: the file is damaged`);
      }
      if (lineNo === 1) {
        yield { kind: "header", header: checkHeader(jsonLine(line.bytes, where(1)), path) };
        continue;
      }
      if (open) {
        const text = line.bytes;
        if (isEndLine(text)) {
          const end = jsonLine(text, where(lineNo)) as unknown as PartEnd;
          checkEnd(end, open, `${path}: ${partName(index, open.begin)}`);
          yield { kind: "end", end, index };
          open = undefined;
          continue;
        }
        open.hash.update(text);
        open.hash.update(NEWLINE);
        open.lines++;
        open.bytes += text.length + 1;
        yield { kind: "line", bytes: text, lineNo, index };
        continue;
      }
      const v = jsonLine(line.bytes, where(lineNo));
      if (v.end === true && typeof v.parts === "number") {
        if (v.parts !== index) {
          throw new InputError(`${path}: the last line counts ${v.parts} parts, the file holds ${index}`);
        }
        finished = true;
        continue;
      }
      if (v.begin !== true || (v.part !== "definitions" && v.part !== "queue")) {
        throw new InputError(`${where(lineNo)} begins no part: the file is damaged`);
      }
      index++;
      const begin = v as unknown as PartBegin;
      if (begin.part === "queue" && typeof begin.queue !== "string") {
        throw new InputError(`${where(lineNo)}: part ${index} names no queue`);
      }
      open = { begin, hash: createHash("sha256"), lines: 0, bytes: 0 };
      yield { kind: "begin", begin, index };
    }
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`cannot read ${path}: ${(err as Error).message}`);
  }
  if (lineNo === 0) throw new InputError(`${path} is empty: it is not a kmq export`);
  if (open) {
    throw new InputError(
      `${path}: ${
        partName(index, open.begin)
      } has no end line: the file is truncated (nothing from it is used)`,
    );
  }
  if (!finished) throw new InputError(`${path} has no last line: the file is truncated after part ${index}`);
}

const latin1 = new TextDecoder("latin1");
const END_LINE = /^\{"part":"(definitions|queue)","end":true/;

/** A part's end line, told from a message record by how it starts (a record starts `{"exchange"`). */
function isEndLine(text: Uint8Array): boolean {
  return text.length < 2048 && END_LINE.test(latin1.decode(text.subarray(0, 40)));
}

function checkHeader(v: Record<string, unknown>, path: string): ExportHeader {
  if (typeof v.kmq_export !== "number") {
    throw new InputError(`${path} is not a kmq export (its first line has no "kmq_export")`);
  }
  if (v.kmq_export > FORMAT_VERSION) {
    throw new InputError(
      `${path} is export format ${v.kmq_export}; this kmq reads format ${FORMAT_VERSION}: use a newer kmq`,
    );
  }
  return v as unknown as ExportHeader;
}

function checkEnd(
  end: PartEnd,
  open: { begin: PartBegin; hash: Hash; lines: number; bytes: number },
  name: string,
): void {
  if (end.part !== open.begin.part || end.queue !== open.begin.queue) {
    throw new InputError(`${name} ends with another part's end line: the file is damaged`);
  }
  if (end.lines !== open.lines || end.bytes !== open.bytes) {
    throw new InputError(
      `${name} holds ${open.lines} lines (${open.bytes} bytes) where its end line counts ${end.lines} ` +
        `(${end.bytes} bytes): the file is damaged (nothing from this part is used)`,
    );
  }
  if (end.sha256 !== open.hash.digest("hex")) {
    throw new InputError(
      `${name} fails its SHA-256 checksum: the file was changed or damaged (nothing from this part is used)`,
    );
  }
}
