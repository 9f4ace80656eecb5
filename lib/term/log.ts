import process from "node:process";
import { forStderr } from "./errors.ts";

/** Diagnostics go to stderr, so stdout carries only message data. */
export interface Log {
  /** Steps (connecting, declaring); shown with --verbose only. */
  info(message: string): void;
  /** Something the user should know that does not stop kmq. */
  warn(message: string): void;
}

export function stderrLog(verbose: boolean): Log {
  // every line is masked: a URL may reach a message through an error text kmq does not control
  const write = (line: string) => process.stderr.write(`kmq: ${forStderr(line)}\n`);
  return {
    info: verbose ? write : () => {},
    warn: write,
  };
}
