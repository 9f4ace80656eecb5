import { Buffer } from "node:buffer";
import { readFile, stat } from "node:fs/promises";
import { InputError } from "../term/errors.ts";

/** One message body and where it came from, so an error can name its line, file or argument. */
export interface Body {
  bytes: Uint8Array;
  /** "argument 2", "line 17", "file 'x.json'", "stdin". */
  origin: string;
  /** The last line of the input, and no newline ended it: the writer may have been cut off. */
  unterminated?: boolean;
}

/** RabbitMQ's default max_message_size (128 MiB): a larger body is refused before it is all read. */
export const DEFAULT_MAX_MESSAGE_SIZE = 128 * 1024 * 1024;

function tooBig(origin: string, max: number): InputError {
  return new InputError(
    `${origin} is over ${max} bytes, the most --max-message-size allows (RabbitMQ's default limit): ` +
      "split it, or raise --max-message-size and the broker's max_message_size",
  );
}

/** Standard input is a directory (`kmq produce < /tmp`). */
export const stdinIsDirectory = () =>
  new InputError("standard input is a directory: redirect a file (< file.txt) or use --file");

/** Reading stdin failed (a directory, an I/O error): bad input, said in one line. */
export async function* stdinChunks(stream: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* stream;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "EISDIR") {
      throw stdinIsDirectory();
    }
    throw new InputError(`reading standard input: ${(err as Error).message}`);
  }
}

const encoder = new TextEncoder();

export function* fromArguments(messages: string[]): Generator<Body> {
  for (const [i, m] of messages.entries()) yield { bytes: encoder.encode(m), origin: `argument ${i + 1}` };
}

/** Fails before anything is published when a file is missing, unreadable, a directory or too big. */
export async function checkFiles(paths: string[], max = DEFAULT_MAX_MESSAGE_SIZE): Promise<void> {
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
    if (info.size > max) throw tooBig(`file '${path}'`, max);
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
export async function* fromWholeStream(
  stream: AsyncIterable<Uint8Array>,
  max = DEFAULT_MAX_MESSAGE_SIZE,
): AsyncGenerator<Body> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += chunk.length;
    if (size > max) throw tooBig("stdin", max);
    chunks.push(chunk);
  }
  if (chunks.every((c) => c.length === 0)) {
    throw new InputError("nothing to send: standard input was empty");
  }
  yield { bytes: Buffer.concat(chunks), origin: "stdin" };
}

/**
 * Each line of the stream is one message, read as the stream arrives so memory stays bounded by
 * the longest line (at most `max` bytes: a longer one is refused before the rest of it is read).
 * `\n` and `\r\n` both end a line; a last line without a newline counts, marked `unterminated`.
 * Lines are views into the chunks the stream handed over (fresh buffers each time), so a line
 * costs a copy only when it spans chunks.
 */
export async function* fromLines(
  stream: AsyncIterable<Uint8Array>,
  max = DEFAULT_MAX_MESSAGE_SIZE,
): AsyncGenerator<Body> {
  let parts: Uint8Array[] = [];
  let pending = 0;
  let lineNo = 0;
  const line = (bytes: Uint8Array): Body => {
    const end = bytes.length > 0 && bytes[bytes.length - 1] === 13 ? bytes.length - 1 : bytes.length;
    if (end > max) throw tooBig(`line ${lineNo + 1}`, max);
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
        pending = 0;
      }
      yield line(bytes);
      start = nl + 1;
    }
    if (start < chunk.length) {
      parts.push(chunk.subarray(start));
      pending += chunk.length - start;
      // +1: a \r may still end it
      if (pending > max + 1) throw tooBig(`line ${lineNo + 1}`, max);
    }
  }
  if (parts.length > 0) {
    const last = Buffer.concat(parts);
    if (last.length > 0) yield { ...line(last), unterminated: true };
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
