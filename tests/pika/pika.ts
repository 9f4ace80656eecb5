/** pika (tests/pika/headers.py), a client nobody here wrote, as tests call it. */
import { assert } from "../assert.ts";
import { skipWithoutPython, TEST_URL } from "../helpers.ts";

const PYTHON = "/usr/bin/python3";
const SCRIPT = new URL("./headers.py", import.meta.url).pathname;
/** The test broker's URL as pika wants it (the default vhost spelled out). */
export const PIKA_URL = TEST_URL.replace(/\/$/, "/%2F");
export const noPika = await skipWithoutPython("pika");

/** Runs headers.py with these arguments; its stdout. */
export async function pika(...args: string[]): Promise<string> {
  const out = await new Deno.Command(PYTHON, { args: [SCRIPT, ...args] }).output();
  assert(out.success, `pika ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}
