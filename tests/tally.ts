/**
 * What came out against what went in, exactly: messages are numbered 1..N, every body read back is
 * checked to be one of them (a garbled or foreign body fails), and the count of each says what was
 * lost and what came twice. A check by set size would let a foreign line hide a lost message.
 */
import { assert } from "./assert.ts";

/** Lines `from`..`to` (numbers), newline-terminated: message i's body is `i`. */
export function numbered(from: number, to: number): string {
  const out: string[] = [];
  for (let i = from; i <= to; i++) out.push(String(i));
  return out.join("\n") + "\n";
}

export interface Tally {
  sent: number;
  received: number;
  duplicated: number;
  lost: number;
}

/** Counts the bodies 1..sent among `bodies`: how many came, came twice or more, never came. */
export function tally(sent: number, bodies: Iterable<string>): Tally {
  const seen = new Uint32Array(sent + 1);
  let received = 0;
  for (const b of bodies) {
    const n = /^[1-9]\d*$/.test(b) ? Number(b) : NaN;
    assert(n >= 1 && n <= sent, `unexpected message '${b}'`);
    seen[n]!++;
    received++;
  }
  let duplicated = 0;
  let lost = 0;
  for (let i = 1; i <= sent; i++) {
    if (seen[i] === 0) lost++;
    else duplicated += seen[i]! - 1;
  }
  return { sent, received, duplicated, lost };
}

/** Lines of a consumer's stdout (one message each). */
export function linesOf(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}

/** Fails unless every one of 1..sent is among `bodies` (duplicates allowed up to `maxDuplicates`). */
export function assertAllArrived(sent: number, bodies: Iterable<string>, maxDuplicates = Infinity): Tally {
  const t = tally(sent, bodies);
  assert(t.lost === 0, `${t.lost} of ${sent} messages lost`);
  assert(t.duplicated <= maxDuplicates, `${t.duplicated} duplicates (at most ${maxDuplicates} expected)`);
  return t;
}
