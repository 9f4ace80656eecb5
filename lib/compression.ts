/**
 * Kombu's message compression: the body compressed, its method named in the `compression` header
 * (the content type and encoding stay those of the uncompressed body). zlib and brotli come with
 * the runtime's node:zlib; Kombu's bz2, lzma and zstd have no decoder here, and say so.
 */
import { brotliCompressSync, brotliDecompressSync, deflateSync, inflateSync } from "node:zlib";

/** The methods `produce --compress` offers, and the header value Kombu gives each. */
export const COMPRESSIONS = { zlib: "application/x-gzip", brotli: "application/x-brotli" } as const;
export type Compression = keyof typeof COMPRESSIONS;

/** Kombu's other header values, which kmq recognises but cannot undo. */
const UNSUPPORTED: Record<string, string> = {
  "application/x-bz2": "bzip2",
  "application/x-lzma": "lzma",
  "application/zstd": "zstd",
};

export function compress(body: Uint8Array, method: Compression): Uint8Array {
  return method === "zlib" ? deflateSync(body) : brotliCompressSync(body);
}

/** The body with the header's compression undone; throws an Error saying why it cannot be. */
export function decompress(body: Uint8Array, header: string): Uint8Array {
  switch (header) {
    case COMPRESSIONS.zlib:
      return inflateSync(body); // Kombu's "zlib" and "gzip" are both zlib.compress
    case COMPRESSIONS.brotli:
      return brotliDecompressSync(body);
    default:
      throw new Error(
        UNSUPPORTED[header]
          ? `kmq has no ${UNSUPPORTED[header]} decoder (it decodes zlib and brotli)`
          : `unknown compression '${header}'`,
      );
  }
}
