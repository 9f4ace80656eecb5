/**
 * Encodes basic.publish frames straight into a buffer and hands the socket one write per batch
 * (128 KiB, or what a turn of the event loop produced): one system call per few hundred small
 * messages instead of three per message.
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { InputError } from "../term/errors.ts";
import type { OutMessage } from "./confirm-window.ts";
import {
  ByteWriter,
  encodeProperties,
  FrameSizeError,
  type MessageProperties,
  writePublish,
} from "./wire.ts";

export const WRITE_BATCH_BYTES = 128 * 1024;

/** Where frames go: the connection, the channel's number and the negotiated frame size. */
export interface FrameTarget {
  client: AMQPClient;
  channelId: number;
  frameMax: number;
}

export class FrameBatcher {
  private out = new ByteWriter(WRITE_BATCH_BYTES * 2);
  /** Writers the socket is done with, to reuse (a write keeps its buffer until it is on the wire). */
  private spareWriters: ByteWriter[] = [];
  private flushScheduled = false;
  /** The last write handed to the socket: awaited to bound what is buffered. */
  lastWrite: Promise<void> = Promise.resolve();
  /** Bytes encoded or handed to the socket and not yet written. */
  unflushedBytes = 0;
  private propsCache = new WeakMap<MessageProperties, Uint8Array>();
  target?: FrameTarget;

  /**
   * @param mandatory every message is published with the mandatory flag (returned if unroutable)
   * @param onWriteFailed told when the socket refuses a write: the connection is lost
   */
  constructor(private readonly mandatory: boolean, private readonly onWriteFailed: (err: unknown) => void) {}

  /** Encodes one message; a message that cannot be framed is bad input naming its origin. */
  write(msg: OutMessage): void {
    const target = this.target!;
    const before = this.out.pos;
    try {
      writePublish(
        this.out,
        target.channelId,
        target.frameMax,
        msg.exchange,
        msg.routingKey,
        this.mandatory,
        this.encoded(msg.properties),
        msg.body,
      );
    } catch (err) {
      this.out.pos = before; // drop the partial frames
      if (err instanceof FrameSizeError || err instanceof RangeError) {
        throw new InputError(`${msg.origin}: ${err.message}`);
      }
      throw err;
    }
    this.unflushedBytes += this.out.pos - before;
    if (this.out.pos >= WRITE_BATCH_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Hands what is encoded to the socket (nothing while there is no connection). */
  flush(): void {
    this.flushScheduled = false;
    if (this.out.pos === 0 || !this.target) return;
    // the socket keeps the bytes until written: hand it this writer, take a spare one
    const sent = this.out;
    const bytes = sent.view();
    this.out = this.spareWriters.pop() ?? new ByteWriter(WRITE_BATCH_BYTES * 2);
    const size = bytes.length;
    const recycle = () => {
      this.unflushedBytes -= size;
      sent.pos = 0;
      if (this.spareWriters.length < 8) this.spareWriters.push(sent);
    };
    this.lastWrite = this.target.client.send(bytes).then(recycle, (err) => {
      recycle();
      this.onWriteFailed(err);
    });
  }

  async flushAndWait(): Promise<void> {
    this.flush();
    await this.lastWrite;
  }

  /** Forgets what was encoded for a connection that is gone (it is sent again from the window). */
  detach(): void {
    this.target = undefined;
    this.out.pos = 0;
    this.unflushedBytes = 0;
  }

  /** Properties objects are shared by the messages of one run: each is encoded once. */
  private encoded(p: MessageProperties): Uint8Array {
    let bytes = this.propsCache.get(p);
    if (!bytes) {
      bytes = encodeProperties(p);
      this.propsCache.set(p, bytes);
    }
    return bytes;
  }
}
