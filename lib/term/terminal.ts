/**
 * Whether a file descriptor is a terminal, without creating its process stream (which costs a
 * Bun binary ~25 ms at start): a character device other than /dev/null. Elsewhere than on Unix
 * the stream answers.
 */
import { fstatSync, statSync } from "node:fs";
import process from "node:process";

export function isTerminal(fd: 0 | 1 | 2): boolean {
  if (process.platform === "win32") {
    return (fd === 0 ? process.stdin : fd === 1 ? process.stdout : process.stderr).isTTY === true;
  }
  try {
    const st = fstatSync(fd);
    return st.isCharacterDevice() && st.rdev !== statSync("/dev/null").rdev;
  } catch {
    return false;
  }
}
