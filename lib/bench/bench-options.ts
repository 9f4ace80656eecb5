/** What `kmq bench` runs: how many producers and consumers, what they send, and for how long. */
import type { GlobalOptions } from "../amqp/connection.ts";

export type BenchQueueType = "classic" | "quorum" | "stream";

export interface BenchOptions extends GlobalOptions {
  producers: number;
  consumers: number;
  /** Body size in bytes (at least 12: the send time and the run's tag travel in it). */
  size: number;
  /** A body file's bytes instead of `size` zeros (the send time then travels in a header). */
  body?: Uint8Array;
  /** Messages per second per producer; 0: as fast as the broker takes them. */
  rate: number;
  /** Seconds to publish for (the default when no `count` is given). */
  duration?: number;
  /** Messages per producer (with no producers: messages to receive in all). */
  count?: number;
  /** Unconfirmed messages in flight per producer; 0: no publisher confirms. */
  confirm: number;
  persistent: boolean;
  prefetch: number;
  /** Ack every N messages with one multiple ack (1: each on its own). */
  multiAck: number;
  /** Per consumer: at most this many messages per second are handled; 0: no limit. */
  consumerRate: number;
  /** Per consumer: milliseconds of work per message before it counts as received and is acked. */
  consumerLatency: number;
  queueType: BenchQueueType;
  queues: number;
  /** An existing queue to bench (declared by nobody, deleted by nobody). */
  predeclared?: string;
  json: boolean;
  /** Where the end-to-end latency histogram goes in `.hgrm` form. */
  hgrm?: string;
  /** Where the confirm latency histogram goes in `.hgrm` form. */
  confirmHgrm?: string;
}

/** A message is stamped with its due time (float64 ms) and the run's tag (uint32): 12 bytes. */
export const STAMP_BYTES = 12;
/** The headers that carry the stamp when the body is a file's bytes. */
export const DUE_HEADER = "x-kmq-bench-due";
export const RUN_HEADER = "x-kmq-bench-run";
