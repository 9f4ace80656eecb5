/**
 * Kombu's "lzma" compression (Python's lzma module). Python writes .xz and reads both .xz and the
 * older .lzma ("alone") format. No maintained pure-JS library does both ways, so: .xz is read by
 * xz-decompress (xz-embedded in WebAssembly, inlined in the package), and kmq writes .lzma with
 * LZMA-JS (npm `lzma`, pure JavaScript) and reads it back with LZMA-JS's decompressor as vendored
 * in lib/vendor/lzma-decompress.js (bytes out, bounded; see scripts/vendor-lzma.ts). Loaded on
 * first use only.
 */
const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];

interface LzmaJs {
  compress(data: Uint8Array, mode: number): number[];
}

async function lzmaJs(): Promise<LzmaJs> {
  // A script that sets `this.LZMA_WORKER`: CommonJS exports it, seen as the default export.
  const module = await import("lzma/src/lzma_worker.js") as { default?: { LZMA_WORKER: LzmaJs } };
  return (module.default ?? module as { LZMA_WORKER: LzmaJs }).LZMA_WORKER;
}

/** .lzma at Python's default preset (6). */
export async function lzmaCompress(body: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array((await lzmaJs()).compress(body, 6)); // LZMA-JS gives signed bytes
}

/** Decoding gave way to a stop signal (the message was not decoded). */
export class DecodeStopped extends Error {}

/** An .xz or .lzma body, at most `limit` bytes once decompressed; `stop` ends the work early. */
export function lzmaDecompress(body: Uint8Array, limit: number, stop?: AbortSignal): Promise<Uint8Array> {
  return XZ_MAGIC.every((b, i) => body[i] === b)
    ? xzDecompress(body, limit, stop)
    : aloneDecompress(body, limit, stop);
}

async function xzDecompress(body: Uint8Array, limit: number, stop?: AbortSignal): Promise<Uint8Array> {
  // A UMD bundle: Bun sees its named export, Deno only the CommonJS default.
  type Xz = typeof import("xz-decompress");
  const module = await import("xz-decompress") as Xz & { default?: Xz };
  const XzReadableStream = module.default?.XzReadableStream ?? module.XzReadableStream;
  const chunks: Uint8Array[] = [];
  let length = 0;
  const input = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(body);
      controller.close();
    },
  });
  for await (const chunk of new XzReadableStream(input) as unknown as AsyncIterable<Uint8Array>) {
    if (stop?.aborted) throw new DecodeStopped("stopped");
    length += chunk.length;
    if (length > limit) throw new Error(`it is larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** How much decoded output is gathered before it is moved into a Uint8Array. */
const TAKE_EVERY = 1 << 20;
/** How long decoding runs before it lets timers and signals in. */
const SLICE_MS = 20;

interface Decoder {
  step(): boolean;
  size(): number;
  take(): Uint8Array;
}

/**
 * The .lzma ("alone") format, decoded by LZMA-JS's decompressor as kmq vendors it (bytes out, a
 * chunk at a time): at most `limit` bytes, whatever the header claims, and never blocking the
 * event loop for more than {@link SLICE_MS}, so a stop signal or a heartbeat still gets through.
 */
async function aloneDecompress(body: Uint8Array, limit: number, stop?: AbortSignal): Promise<Uint8Array> {
  if (body.length < 13) throw new Error("it is neither .xz nor .lzma data");
  const size = new DataView(body.buffer, body.byteOffset, body.byteLength).getBigUint64(5, true);
  if (size !== 0xffffffffffffffffn && size > BigInt(limit)) {
    throw new Error(`it is larger than ${limit} bytes`);
  }
  const { default: lzma } = await import("../vendor/lzma-decompress.js") as {
    default: { decoder(bytes: Uint8Array): Decoder };
  };
  const parts: Uint8Array[] = [];
  let length = 0;
  const take = (d: Decoder) => {
    const part = d.take();
    length += part.length;
    if (length > limit) throw new Error(`it is larger than ${limit} bytes`);
    parts.push(part);
  };
  try {
    const d = lzma.decoder(body);
    let sliceStart = performance.now();
    while (d.step()) {
      if (d.size() >= TAKE_EVERY) take(d);
      if (performance.now() - sliceStart > SLICE_MS) {
        await new Promise((r) => setTimeout(r, 0));
        if (stop?.aborted) throw new DecodeStopped("stopped");
        sliceStart = performance.now();
      }
    }
    take(d);
  } catch (err) {
    if (err instanceof DecodeStopped || (err as Error).message.startsWith("it is larger")) throw err;
    throw new Error(`it is neither .xz nor .lzma data (${(err as Error).message})`);
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
