/**
 * bzip2 through libbzip2 1.0.8 compiled to WebAssembly (npm bzip2-wasm's build, inlined by
 * scripts/inline-wasm.ts). Its own loader is Emscripten glue that installs process-wide exception
 * handlers and looks for the .wasm beside itself; the module needs only five small imports, so
 * it is instantiated here directly. Loaded on first use only.
 */
import { Buffer } from "node:buffer";

interface Exports {
  memory: WebAssembly.Memory;
  malloc(size: number): number;
  free(ptr: number): void;
  BZ2_bzBuffToBuffCompress(
    dest: number,
    destLen: number,
    source: number,
    sourceLen: number,
    blockSize100k: number,
    verbosity: number,
    workFactor: number,
  ): number;
  BZ2_bzBuffToBuffDecompress(
    dest: number,
    destLen: number,
    source: number,
    sourceLen: number,
    small: number,
    verbosity: number,
  ): number;
}

const BZ_OUTBUFF_FULL = -8;
const ERRORS: Record<number, string> = {
  [-3]: "out of memory",
  [-4]: "data integrity error (CRC mismatch)",
  [-5]: "not bzip2 data (bad magic)",
  [-7]: "data ends too early",
};

let instance: Promise<Exports> | undefined;

function load(): Promise<Exports> {
  instance ??= (async () => {
    const { BZIP2_WASM_BASE64 } = await import("../vendor/bzip2-wasm.ts");
    const wasm: { memory?: WebAssembly.Memory } = {};
    const fail = () => {
      throw new Error("libbzip2 stopped unexpectedly");
    };
    const imports = {
      env: {
        exit: fail,
        emscripten_memcpy_big: (dest: number, src: number, n: number) => {
          const heap = new Uint8Array(wasm.memory!.buffer);
          heap.copyWithin(dest, src, src + n);
        },
        emscripten_resize_heap: (wanted: number) => {
          const have = wasm.memory!.buffer.byteLength;
          const pages = Math.ceil((Math.max(wanted, have * 2) - have) / 65536);
          try {
            wasm.memory!.grow(pages);
            return 1;
          } catch {
            return 0;
          }
        },
      },
      wasi_snapshot_preview1: { fd_close: () => 0, fd_write: () => 0, fd_seek: () => 0 },
    };
    const bytes = Buffer.from(BZIP2_WASM_BASE64, "base64");
    const { instance } = await WebAssembly.instantiate(bytes, imports);
    const exports = instance.exports as unknown as Exports;
    wasm.memory = exports.memory;
    return exports;
  })();
  return instance;
}

/**
 * Runs one libbzip2 buffer-to-buffer call, doubling the output buffer while it reports "full",
 * up to `limit` bytes (so that a small bomb cannot exhaust memory).
 */
function run(
  lib: Exports,
  input: Uint8Array,
  firstSize: number,
  limit: number,
  call: (dest: number, destLen: number, source: number) => number,
): Uint8Array {
  const source = lib.malloc(Math.max(input.length, 1));
  new Uint8Array(lib.memory.buffer).set(input, source);
  try {
    for (let size = Math.min(firstSize, limit);; size = Math.min(size * 2, limit)) {
      const dest = lib.malloc(size);
      const destLen = lib.malloc(4);
      try {
        if (dest === 0 || destLen === 0) throw new Error(ERRORS[-3]);
        new DataView(lib.memory.buffer).setUint32(destLen, size, true);
        const code = call(dest, destLen, source);
        if (code === BZ_OUTBUFF_FULL && size >= limit) throw new Error(`it is larger than ${limit} bytes`);
        if (code === BZ_OUTBUFF_FULL) continue;
        if (code !== 0) throw new Error(ERRORS[code] ?? `libbzip2 error ${code}`);
        const length = new DataView(lib.memory.buffer).getUint32(destLen, true);
        return new Uint8Array(lib.memory.buffer, dest, length).slice();
      } finally {
        lib.free(dest);
        lib.free(destLen);
      }
    }
  } finally {
    lib.free(source);
  }
}

/** bzip2 at level 9, as Python's bz2.compress. */
export async function bzip2Compress(body: Uint8Array): Promise<Uint8Array> {
  const lib = await load();
  // bzip2's documented worst case: 1% larger plus 600 bytes.
  const bound = Math.ceil(body.length * 1.01) + 600;
  return run(
    lib,
    body,
    bound,
    bound,
    (dest, destLen, source) => lib.BZ2_bzBuffToBuffCompress(dest, destLen, source, body.length, 9, 0, 0),
  );
}

/** The body of one bzip2 stream, at most `limit` bytes long. */
export async function bzip2Decompress(body: Uint8Array, limit: number): Promise<Uint8Array> {
  const lib = await load();
  return run(
    lib,
    body,
    Math.max(body.length * 4, 4096),
    limit,
    (dest, destLen, source) => lib.BZ2_bzBuffToBuffDecompress(dest, destLen, source, body.length, 0, 0),
  );
}
