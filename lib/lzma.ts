/**
 * Kombu's "lzma" compression (Python's lzma module). Python writes .xz and reads both .xz and the
 * older .lzma ("alone") format. No maintained pure-JS library does both ways, so: .xz is read by
 * xz-decompress (xz-embedded in WebAssembly, inlined in the package), and kmq writes — and reads
 * back — .lzma with LZMA-JS (npm `lzma`, pure JavaScript). Loaded on first use only.
 */
const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];

interface LzmaJs {
  compress(data: Uint8Array, mode: number): number[];
  decompress(data: Uint8Array): string | number[];
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

/** An .xz or .lzma body, at most `limit` bytes once decompressed. */
export function lzmaDecompress(body: Uint8Array, limit: number): Promise<Uint8Array> {
  return XZ_MAGIC.every((b, i) => body[i] === b) ? xzDecompress(body, limit) : aloneDecompress(body, limit);
}

async function xzDecompress(body: Uint8Array, limit: number): Promise<Uint8Array> {
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

/**
 * LZMA-JS hands back text whenever the bytes look like UTF-8 to its lenient decoder; turning
 * that text back into bytes is exact only for well-formed text of the length the header states.
 */
async function aloneDecompress(body: Uint8Array, limit: number): Promise<Uint8Array> {
  if (body.length < 13) throw new Error("it is neither .xz nor .lzma data");
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const size = view.getBigUint64(5, true);
  const known = size !== 0xffffffffffffffffn;
  if (known && size > BigInt(limit)) throw new Error(`it is larger than ${limit} bytes`);
  let result: string | number[];
  try {
    result = (await lzmaJs()).decompress(body);
  } catch (err) {
    throw new Error(`it is neither .xz nor .lzma data (${(err as Error).message})`);
  }
  if (typeof result !== "string") return new Uint8Array(result);
  const bytes = new TextEncoder().encode(result);
  if (!result.isWellFormed() || (known && BigInt(bytes.length) !== size)) {
    throw new Error("its text is not well-formed UTF-8, which the .lzma decoder cannot return exactly");
  }
  return bytes;
}
