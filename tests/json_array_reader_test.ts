import { assert, assertEquals } from "./assert.ts";
import { JsonArrayReader, NotAnArray } from "../lib/amqp/json-array-reader.ts";

/** Feeds `text` to a reader in chunks of the given sizes (cycled), returning what it handed on. */
function readInChunks(text: string, sizes: number[]): unknown[] {
  const bytes = new TextEncoder().encode(text);
  const out: unknown[] = [];
  const reader = new JsonArrayReader((x) => out.push(x));
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    reader.push(bytes.subarray(at, at + size));
    at += size;
  }
  reader.end();
  assertEquals(reader.count, out.length);
  return out;
}

/** A random JSON value whose strings hold what splits badly: quotes, runs of backslashes, é, 😀. */
function randomValue(depth: number, rnd: () => number): unknown {
  const pick = Math.floor(rnd() * (depth > 3 ? 4 : 7));
  const text = () =>
    Array.from(
      { length: Math.floor(rnd() * 12) },
      () =>
        ['"', "\\", "\\\\", "é", "😀", ",", "]", "}", "a", "\n"][
          Math.floor(rnd() * 10)
        ],
    ).join("");
  switch (pick) {
    case 0:
      return text();
    case 1:
      return Math.floor(rnd() * 1e6) - 5e5;
    case 2:
      return rnd() < 0.5 ? null : rnd() < 0.5;
    case 3:
      return rnd() * 1e300;
    case 4:
      return Array.from({ length: Math.floor(rnd() * 4) }, () => randomValue(depth + 1, rnd));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(rnd() * 4); i > 0; i--) o[text()] = randomValue(depth + 1, rnd);
      return o;
    }
  }
}

function seeded(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
}

Deno.test("JsonArrayReader: any array, split anywhere, gives JSON.parse's elements", () => {
  const rnd = seeded(7);
  for (let round = 0; round < 300; round++) {
    const array = Array.from({ length: Math.floor(rnd() * 8) }, () => randomValue(0, rnd));
    const text = round % 2 ? JSON.stringify(array) : JSON.stringify(array, null, round % 5);
    const sizes = [1 + Math.floor(rnd() * 7), 1 + Math.floor(rnd() * 50), 1];
    assertEquals(readInChunks(text, sizes), JSON.parse(text), `round ${round}: ${text.slice(0, 200)}`);
  }
});

Deno.test("JsonArrayReader: an escaped quote or backslash run across a chunk's edge", () => {
  for (const s of ['a\\"b', "a\\\\", '\\\\\\"', "\\", '"']) {
    const text = JSON.stringify([{ name: s, after: "x" }, s]);
    for (let size = 1; size <= text.length; size++) {
      assertEquals(readInChunks(text, [size]), JSON.parse(text), `${text} in ${size}-byte chunks`);
    }
  }
});

Deno.test("JsonArrayReader: `__proto__` keys stay data, as JSON.parse keeps them", () => {
  const [x] = readInChunks('[{"__proto__":{"polluted":1},"constructor":2}]', [3]) as Record<
    string,
    unknown
  >[];
  assertEquals(Object.keys(x!), ["__proto__", "constructor"]);
  assertEquals(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("JsonArrayReader: what is not one whole array is a SyntaxError", () => {
  for (
    const bad of ['{"a":1}', "[1,2", "[1,]", "[,1]", "[1,,2]", "[1] 2", "[1][2]", '["a', "", "[{]", "[1 2]"]
  ) {
    let thrown: unknown;
    try {
      readInChunks(bad, [2]);
    } catch (e) {
      thrown = e;
    }
    assert(
      thrown instanceof (bad.startsWith("{") ? NotAnArray : SyntaxError),
      `${JSON.stringify(bad)}: ${thrown}`,
    );
  }
  assertEquals(readInChunks(" [ ] ", [1]), []);
  assertEquals(readInChunks("[[],{}]", [1]), [[], {}]);
});
