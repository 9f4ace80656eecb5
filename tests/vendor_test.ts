import { assertEquals } from "./assert.ts";
import { inlined, SOURCE, TARGET } from "../scripts/inline-wasm.ts";

Deno.test("vendor: lib/vendor/bzip2-wasm.ts holds the installed bzip2-wasm's bytes (else run scripts/inline-wasm.ts)", async () => {
  assertEquals(await Deno.readTextFile(TARGET), inlined(await Deno.readFile(SOURCE)));
});

Deno.test("vendor: lib/vendor/lzma-decompress.js is the installed lzma's decompressor with kmq's entry (else run scripts/vendor-lzma.ts)", async () => {
  const { SOURCE: LZMA_SOURCE, TARGET: LZMA_TARGET, vendored } = await import("../scripts/vendor-lzma.ts");
  assertEquals(await Deno.readTextFile(LZMA_TARGET), vendored(await Deno.readTextFile(LZMA_SOURCE)));
});
