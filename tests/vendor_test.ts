import { assertEquals } from "./assert.ts";
import { inlined, SOURCE, TARGET } from "../scripts/inline-wasm.ts";

Deno.test("vendor: lib/vendor/bzip2-wasm.ts holds the installed bzip2-wasm's bytes (else run scripts/inline-wasm.ts)", async () => {
  assertEquals(await Deno.readTextFile(TARGET), inlined(await Deno.readFile(SOURCE)));
});
