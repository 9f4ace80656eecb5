/**
 * A file written in large batches: appends are synchronous (a consumer's delivery callback cannot
 * wait), writes go out in the background, and `full` tells the producer of the bytes to pause
 * until `drained()`. `sync()` makes everything appended so far durable (fsync), for --drain.
 */
import { Buffer } from "node:buffer";
import { type FileHandle, open } from "node:fs/promises";

/** Bytes gathered before a write. */
const BATCH = 1024 * 1024;
/** Bytes waiting to be written past which the producer should pause. */
const HIGH_WATER = 8 * 1024 * 1024;

export class BatchedFile {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> = Promise.resolve();
  private failure?: Error;
  /** Bytes appended in all. */
  written = 0;

  private constructor(private readonly fh: FileHandle, readonly path: string) {}

  /** Creates (or truncates) `path`; `exclusive` refuses one that exists. */
  static async create(path: string, exclusive: boolean): Promise<BatchedFile> {
    return new BatchedFile(await open(path, exclusive ? "wx" : "w", 0o600), path);
  }

  append(bytes: Uint8Array): void {
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    this.written += bytes.length;
    if (this.pendingBytes >= BATCH) this.writeOut();
  }

  /** More waits to be written than should be held in memory. */
  get full(): boolean {
    return this.pendingBytes >= HIGH_WATER || this.backlog >= HIGH_WATER;
  }

  private backlog = 0;

  private writeOut(): void {
    if (this.pending.length === 0) return;
    const batch = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.backlog += batch.length;
    this.writing = this.writing.then(async () => {
      if (this.failure) return;
      try {
        let at = 0;
        while (at < batch.length) at += (await this.fh.write(batch, at)).bytesWritten;
      } catch (err) {
        this.failure = err as Error;
      } finally {
        this.backlog -= batch.length;
      }
    });
  }

  /** Resolves once what was appended is written (not synced); throws the write's error. */
  async drained(): Promise<void> {
    this.writeOut();
    await this.writing;
    if (this.failure) throw this.failure;
  }

  /** Everything appended is on disk (fsync). */
  async sync(): Promise<void> {
    await this.drained();
    await this.fh.sync();
  }

  async close(): Promise<void> {
    try {
      await this.drained();
    } finally {
      await this.fh.close();
    }
  }
}
