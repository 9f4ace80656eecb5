import { Buffer } from "node:buffer";
import { readFile, stat } from "node:fs/promises";
import { InputError } from "./errors.ts";

/** One message body and where it came from, so an error can name its line, file or argument. */
export interface Body {
  bytes: Uint8Array;
  /** "argument 2", "line 17", "file 'x.json'", "stdin". */
  origin: string;
}

const encoder = new TextEncoder();

export function* fromArguments(messages: string[]): Generator<Body> {
  for (const [i, m] of messages.entries()) yield { bytes: encoder.encode(m), origin: `argument ${i + 1}` };
}

/** Fails before anything is published when a file is missing, unreadable or a directory. */
export async function checkFiles(paths: string[]): Promise<void> {
  for (const path of paths) {
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      const code = (err as { code?: string }).code;
      const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable" : String(err);
      throw new InputError(`file '${path}' ${why}: check the path given to --file`);
    }
    if (info.isDirectory()) throw new InputError(`'${path}' is a directory: --file takes a file`);
  }
}

export async function* fromFiles(paths: string[]): AsyncGenerator<Body> {
  for (const path of paths) {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (err) {
      throw new InputError(`cannot read file '${path}': ${(err as Error).message}`);
    }
    yield { bytes, origin: `file '${path}'` };
  }
}

/** All of stdin as one message, bytes kept exactly. */
export async function* fromWholeStream(stream: AsyncIterable<Uint8Array>): AsyncGenerator<Body> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  if (chunks.every((c) => c.length === 0)) {
    throw new InputError("nothing to send: standard input was empty");
  }
  yield { bytes: Buffer.concat(chunks), origin: "stdin" };
}

/**
 * Each line of the stream is one message, read as the stream arrives so memory stays bounded by
 * the longest line. `\n` and `\r\n` both end a line; a last line without a newline counts.
 * Lines are views into the chunks the stream handed over (fresh buffers each time), so a line
 * costs a copy only when it spans chunks.
 */
export async function* fromLines(stream: AsyncIterable<Uint8Array>): AsyncGenerator<Body> {
  let parts: Uint8Array[] = [];
  let lineNo = 0;
  const line = (bytes: Uint8Array): Body => {
    const end = bytes.length > 0 && bytes[bytes.length - 1] === 13 ? bytes.length - 1 : bytes.length;
    return { bytes: bytes.subarray(0, end), origin: `line ${++lineNo}` };
  };
  for await (const chunk of stream) {
    let start = 0;
    let nl: number;
    while ((nl = chunk.indexOf(10, start)) !== -1) {
      let bytes = chunk.subarray(start, nl);
      if (parts.length > 0) {
        bytes = Buffer.concat([...parts, bytes]);
        parts = [];
      }
      yield line(bytes);
      start = nl + 1;
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
  }
  if (parts.length > 0) {
    const last = Buffer.concat(parts);
    if (last.length > 0) yield line(last);
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** --json: a body that is not one JSON value is bad input (exit 3), named by its origin. */
export function checkJson(body: Body): void {
  try {
    JSON.parse(strictUtf8.decode(body.bytes));
  } catch (err) {
    const why = err instanceof SyntaxError ? err.message : "not valid UTF-8";
    throw new InputError(`${body.origin} is not valid JSON (${why}); fix it or drop --json`);
  }
}
