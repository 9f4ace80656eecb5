/**
 * Kombu's message compression: the body compressed, its method named in the `compression` header
 * (the content type and encoding stay those of the uncompressed body). zlib and brotli come with
 * the runtime's node:zlib (loaded on first use); bzip2 and lzma load their libraries on first use (lib/bzip2.ts,
 * lib/lzma.ts); Kombu's zstd has no decoder here, and says so.
 */
import { bzip2Compress, bzip2Decompress } from "./bzip2.ts";
import { lzmaCompress, lzmaDecompress } from "./lzma.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "./sources.ts";

type Zlib = typeof import("node:zlib");
let zlibModule: Promise<Zlib> | undefined;
/** node:zlib costs a Bun binary ~7 ms to load: only a body that is (de)compressed pays for it. */
const zlib = () => (zlibModule ??= import("node:zlib"));

/** The methods `produce --compress` offers, and the header value Kombu gives each. */
export const COMPRESSIONS = {
  zlib: "application/x-gzip",
  bzip2: "application/x-bz2",
  lzma: "application/x-lzma",
  brotli: "application/x-brotli",
} as const;
export type Compression = keyof typeof COMPRESSIONS;

/** No decompressed body may exceed this: a few kilobytes can otherwise claim gigabytes. */
export const MAX_DECOMPRESSED = DEFAULT_MAX_MESSAGE_SIZE;

export async function compress(body: Uint8Array, method: Compression): Promise<Uint8Array> {
  switch (method) {
    case "zlib":
      return (await zlib()).deflateSync(body);
    case "brotli":
      return (await zlib()).brotliCompressSync(body);
    case "bzip2":
      return bzip2Compress(body);
    case "lzma":
      return lzmaCompress(body);
  }
}

/**
 * The body with the header's compression undone; throws an Error saying why it cannot be, or
 * DecodeStopped when `stop` came first (slow decoders check it as they go).
 */
export async function decompress(body: Uint8Array, header: string, stop?: AbortSignal): Promise<Uint8Array> {
  const z = await zlib();
  return bounded(() => undo(body, header, z, stop));
}

/** node:zlib's own words for the limit are about Buffers; say what it means for the message. */
function bounded<T>(work: () => T): T {
  try {
    return work();
  } catch (err) {
    if ((err as { code?: string }).code !== "ERR_BUFFER_TOO_LARGE") throw err;
    throw new Error(`it is larger than ${MAX_DECOMPRESSED} bytes`);
  }
}

function undo(
  body: Uint8Array,
  header: string,
  z: Zlib,
  stop?: AbortSignal,
): Promise<Uint8Array> | Uint8Array {
  const limit = { maxOutputLength: MAX_DECOMPRESSED };
  switch (header) {
    case COMPRESSIONS.zlib:
      return z.inflateSync(body, limit); // Kombu's "zlib" and "gzip" are both zlib.compress
    case COMPRESSIONS.brotli:
      return z.brotliDecompressSync(body, limit);
    case COMPRESSIONS.bzip2:
      return bzip2Decompress(body, MAX_DECOMPRESSED);
    case COMPRESSIONS.lzma:
      return lzmaDecompress(body, MAX_DECOMPRESSED, stop);
    case "application/zstd":
      throw new Error("kmq has no zstd decoder (it decodes zlib, bzip2, lzma and brotli)");
    default:
      throw new Error(`unknown compression '${header}'`);
  }
}

/** A `content_encoding` of gzip or deflate undone (not Kombu's way, but other clients'). */
export async function decodeContent(body: Uint8Array, encoding: string): Promise<Uint8Array> {
  const z = await zlib();
  const limit = { maxOutputLength: MAX_DECOMPRESSED };
  if (encoding !== "deflate") return bounded(() => z.gunzipSync(body, limit));
  try {
    return bounded(() => z.inflateSync(body, limit));
  } catch (err) {
    if ((err as Error).message.startsWith("it is larger")) throw err;
    // "deflate" is sent both with and without the zlib wrapper
    return bounded(() => z.inflateRawSync(body, limit));
  }
}
