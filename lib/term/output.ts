/** Writing data to stdout: the one way commands write it, and how a reader that went away shows. */
import type { Writable } from "node:stream";
import { ExitCode, KmqError } from "./errors.ts";

/** Writes to stdout; a failure is a KmqError, never mistaken for a lost connection (and retried). */
export function write(out: Writable, bytes: Uint8Array): Promise<void> {
  const failed = (err: Error) =>
    new KmqError(ExitCode.unexpected, `writing to stdout: ${err.message}`, { cause: err });
  return new Promise((resolve, reject) => {
    try {
      out.write(bytes, (err) => (err ? reject(failed(err)) : resolve()));
    } catch (err) {
      reject(failed(err as Error)); // some runtimes throw instead of calling back
    }
  });
}

/** A failed {@link write} because the reader went away (`| head`). */
export const readerGone = (err: unknown) => {
  const code = (err as { cause?: { code?: string } }).cause?.code;
  return code === "EPIPE" || code === "ERR_STREAM_DESTROYED";
};
