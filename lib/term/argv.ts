/**
 * Command-line arguments arrive decoded as UTF-8, with U+FFFD in place of bytes that are not
 * UTF-8: a message or name given that way would be changed silently. On Linux the raw bytes are
 * in /proc/self/cmdline, which tells a real U+FFFD from a replaced byte; elsewhere any U+FFFD is
 * refused.
 */
import { readFileSync } from "node:fs";
import { InputError } from "./errors.ts";

const strict = new TextDecoder("utf-8", { fatal: true });

/** The last `count` arguments as the kernel holds them, or undefined where that cannot be read. */
function rawArguments(count: number): Uint8Array[] | undefined {
  let raw: Uint8Array;
  try {
    raw = readFileSync("/proc/self/cmdline");
  } catch {
    return undefined;
  }
  const args: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0) {
      args.push(raw.subarray(start, i));
      start = i + 1;
    }
  }
  return args.length >= count ? args.slice(args.length - count) : undefined;
}

function validUtf8(bytes: Uint8Array): boolean {
  try {
    strict.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Throws exit 3 when an argument was not valid UTF-8 (kmq cannot send its bytes as given). */
export function checkArgumentsUtf8(argv: string[]): void {
  if (!argv.some((a) => a.includes("\uFFFD"))) return; // the common case costs one scan
  const raw = rawArguments(argv.length);
  for (const [i, arg] of argv.entries()) {
    if (!arg.includes("\uFFFD")) continue;
    const bytes = raw?.[i];
    if (bytes && validUtf8(bytes)) continue; // a real U+FFFD
    throw new InputError(
      `command-line argument ${i + 1} is not valid UTF-8, and kmq would have to change its bytes: ` +
        "give a binary body on stdin or with --file",
    );
  }
}
