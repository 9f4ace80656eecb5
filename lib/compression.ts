/**
 * Kombu's message compression: the body compressed, its method named in the `compression` header
 * (the content type and encoding stay those of the uncompressed body). zlib and brotli come with
 * the runtime's node:zlib; bzip2 and lzma load their libraries on first use (lib/bzip2.ts,
 * lib/lzma.ts); Kombu's zstd has no decoder here, and says so.
 */
import {
  brotliCompressSync,
  brotliDecompressSync,
  deflateSync,
  gunzipSync,
  inflateRawSync,
  inflateSync,
} from "node:zlib";
import { bzip2Compress, bzip2Decompress } from "./bzip2.ts";
import { lzmaCompress, lzmaDecompress } from "./lzma.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "./sources.ts";

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

export function compress(body: Uint8Array, method: Compression): Promise<Uint8Array> | Uint8Array {
  switch (method) {
    case "zlib":
      return deflateSync(body);
    case "brotli":
      return brotliCompressSync(body);
    case "bzip2":
      return bzip2Compress(body);
    case "lzma":
      return lzmaCompress(body);
  }
}

/** The body with the header's compression undone; throws an Error saying why it cannot be. */
export function decompress(body: Uint8Array, header: string): Promise<Uint8Array> | Uint8Array {
  return bounded(() => undo(body, header));
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

function undo(body: Uint8Array, header: string): Promise<Uint8Array> | Uint8Array {
  const limit = { maxOutputLength: MAX_DECOMPRESSED };
  switch (header) {
    case COMPRESSIONS.zlib:
      return inflateSync(body, limit); // Kombu's "zlib" and "gzip" are both zlib.compress
    case COMPRESSIONS.brotli:
      return brotliDecompressSync(body, limit);
    case COMPRESSIONS.bzip2:
      return bzip2Decompress(body, MAX_DECOMPRESSED);
    case COMPRESSIONS.lzma:
      return lzmaDecompress(body, MAX_DECOMPRESSED);
    case "application/zstd":
      throw new Error("kmq has no zstd decoder (it decodes zlib, bzip2, lzma and brotli)");
    default:
      throw new Error(`unknown compression '${header}'`);
  }
}

/** A `content_encoding` of gzip or deflate undone (not Kombu's way, but other clients'). */
export function decodeContent(body: Uint8Array, encoding: string): Uint8Array {
  const limit = { maxOutputLength: MAX_DECOMPRESSED };
  if (encoding !== "deflate") return bounded(() => gunzipSync(body, limit));
  try {
    return bounded(() => inflateSync(body, limit));
  } catch (err) {
    if ((err as Error).message.startsWith("it is larger")) throw err;
    // "deflate" is sent both with and without the zlib wrapper
    return bounded(() => inflateRawSync(body, limit));
  }
}
