/** What a move is asked to do, where it writes, and what it counts as it goes. */
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import type { BrokerOptions, GlobalOptions } from "../amqp/connection.ts";
import type { FieldTable } from "../messages/fields.ts";
import type { TakenCount } from "../messages/taken-count.ts";
import type { Log } from "../term/log.ts";
import type { ProgressStream } from "../term/progress.ts";

export interface MoveOptions extends GlobalOptions {
  from: string;
  /** A queue, reached through the default exchange; or undefined with `toExchange`. */
  to?: string;
  toExchange?: string;
  /** The routing key for --to-exchange; undefined keeps each message's own. */
  routingKey?: string;
  toBroker: BrokerOptions;
  count?: number;
  /** Move what the source holds at the start and no more (new arrivals stay). */
  exitAtEnd?: boolean;
  /** Seconds without a message before stopping; undefined: stop once the source is empty. */
  idleTimeout?: number;
  setHeaders: FieldTable;
  dropHeaders: string[];
  retryTimeout: number;
  /** After a stop signal, seconds to wait for the target's confirms of what is in flight. */
  stopTimeout: number;
  /** Messages per second at most. */
  rate?: number;
  /** A CEL condition: only matching messages move; the others stay in the source. */
  filter?: string;
  /** --filter may leave messages in a quorum queue whose delivery limit counts their return. */
  acceptDeliveryCount: boolean;
  /** Where each message goes, decided per message (kmq redrive); without it, --to or --to-exchange. */
  route?: (msg: AMQPMessage) => Promise<Destination>;
  /** How the report names the target, when it is not one queue or exchange ("their origin queues"). */
  targetName?: string;
  /** `route` leaves nothing to go back at the end but fresh messages (it sends them `back`): no guard. */
  returnsFresh?: boolean;
}

/**
 * One message's way: published (with headers added) or left in the source, with why. `back`: it
 * stays by going to the source's own tail as a new message (confirmed, then the old one acked), so
 * a quorum queue does not count a return; `last`: the pass ends at this message, which stays.
 */
export type Destination =
  | {
    send: true;
    exchange: string;
    routingKey: string;
    headers: FieldTable;
    back?: boolean;
    /** Told once the target confirmed it (what a report counts as done). */
    confirmed?: () => void;
  }
  | { send: false; why: string; last?: boolean };

export interface MoveIo {
  log: Log;
  stop: AbortSignal;
  /** A live progress line goes here when it is a terminal. */
  stderr: ProgressStream;
}

/** Messages taken from the source, confirmed by the target, and refused by it. */
export interface Moved {
  taken: number;
  /** What -n counts: a message redelivered after a lost source connection counts once. */
  counted: TakenCount;
  confirmed: number;
  /** Sent `back` to the source's tail and confirmed there (they stay: not moved). */
  kept: number;
  failed: number;
  /** Which message the target refused first, for the report. */
  firstRefused?: string;
  /** When the move started (performance.now()), for the rate. */
  started: number;
}
