/**
 * What `kmq redrive` does with each dead letter: back to the queue it died in (through the default
 * exchange, so no other queue bound to its exchange gets a copy), or left in the dead-letter queue
 * with the reason — no death record, an origin that no longer exists, past --max-redrives, died
 * again during this run, not selected. It counts both for the report.
 */
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import type { MessageFilter } from "../messages/filter.ts";
import type { Destination } from "../move/move-options.ts";
import { type Death, deathOf, headerOf } from "./death.ts";

/** The header a redrive stamps with its run id: a message that comes back with it died again. */
export const RUN_HEADER = "x-kmq-redrive-run";
/** How many times kmq redrove the message, across runs. */
export const COUNT_HEADER = "x-kmq-redrives";
/** A message that stays, sent to the dead-letter queue's tail by this run: when it comes round, the run is done. */
export const KEPT_HEADER = "x-kmq-redrive-kept";

export interface RedriveSelection {
  /** Only deaths for these reasons (rejected, expired, maxlen, delivery_limit). */
  reasons?: string[];
  /** Only dead letters from these queues. */
  origins?: string[];
  filter?: MessageFilter;
  maxRedrives: number;
  /** Back through the exchange and routing key it was first published with, not to its queue. */
  viaExchange: boolean;
}

/** One origin queue and reason: how many, and the oldest and newest death among them. */
export interface Group {
  origin: string;
  reason: string;
  count: number;
  oldest?: bigint;
  newest?: bigint;
}

export class Redriver {
  readonly runId = crypto.randomUUID();
  /** What was sent back, by origin and reason. */
  readonly sent = new Map<string, Group>();
  /** What stays, by why. */
  readonly left = new Map<string, number>();
  private readonly known = new Map<string, boolean>();

  constructor(
    private readonly dlq: string,
    private readonly sel: RedriveSelection,
    /** Whether a queue exists (asked of the broker once per name). */
    private readonly exists: (queue: string) => Promise<boolean>,
    /**
     * What stays goes to the DLQ's tail as a new message instead of back at the end (a quorum
     * queue counts every return toward its delivery limit; a new message starts at 0).
     */
    private readonly sendBack = false,
  ) {}

  /** The way of one dead letter. */
  async decide(msg: AMQPMessage): Promise<Destination> {
    if (this.sendBack && headerOf(msg, KEPT_HEADER) === this.runId) {
      // round the queue once: all that follows was seen already (or came in since)
      return { send: false, why: "sent to the tail by this run", last: true };
    }
    const death = deathOf(msg);
    const leave = (why: string): Destination => {
      this.left.set(why, (this.left.get(why) ?? 0) + 1);
      if (!this.sendBack) return { send: false, why };
      return {
        send: true,
        exchange: "",
        routingKey: this.dlq,
        headers: { [KEPT_HEADER]: this.runId },
        back: true,
      };
    };
    if (!death) return leave("no x-death header: it was published into the queue, not dead-lettered");
    if (headerOf(msg, RUN_HEADER) === this.runId) return leave("died again during this redrive");
    const times = Number(headerOf(msg, COUNT_HEADER) ?? 0);
    if (times >= this.sel.maxRedrives) return leave(`redriven ${times} time(s) already (--max-redrives)`);
    if (this.sel.reasons && !this.sel.reasons.includes(death.reason)) return leave("another --reason");
    if (this.sel.origins && !this.sel.origins.includes(death.queue)) return leave("another --origin");
    if (this.sel.filter && !this.sel.filter.matches(msg)) return leave("--filter did not match");
    if (death.queue === this.dlq) return leave("it died in the dead-letter queue itself");
    const target = this.target(death);
    if (target.exchange === "" && !(await this.queueExists(target.routingKey))) {
      return leave(`its queue '${target.routingKey}' no longer exists`);
    }
    const headers = {
      [RUN_HEADER]: this.runId,
      [COUNT_HEADER]: times + 1,
    };
    // counted as redriven once its queue confirmed it: one the target refused stays, and is not
    return { send: true, ...target, headers, confirmed: () => this.count(death) };
  }

  private target(death: Death): { exchange: string; routingKey: string } {
    if (this.sel.viaExchange) return { exchange: death.exchange, routingKey: death.routingKeys[0] ?? "" };
    return { exchange: "", routingKey: death.queue };
  }

  private async queueExists(name: string): Promise<boolean> {
    let known = this.known.get(name);
    if (known === undefined) {
      known = await this.exists(name);
      this.known.set(name, known);
    }
    return known;
  }

  private count(death: Death): void {
    tally(this.sent, death);
  }
}

/** Adds a death to its origin and reason's group. */
export function tally(groups: Map<string, Group>, death: Death): void {
  const id = `${death.queue}\0${death.reason}`;
  const g = groups.get(id) ?? { origin: death.queue, reason: death.reason, count: 0 };
  g.count++;
  if (death.time !== undefined) {
    if (g.oldest === undefined || death.time < g.oldest) g.oldest = death.time;
    if (g.newest === undefined || death.time > g.newest) g.newest = death.time;
  }
  groups.set(id, g);
}

const when = (t?: bigint) =>
  t === undefined ? "?" : new Date(Number(t) * 1000).toISOString().replace(".000Z", "Z");

/** The groups as lines: "  orders  rejected  12  (2026-11-30T09:00:00Z … 2026-11-30T10:00:00Z)". */
export function groupLines(groups: Map<string, Group>): string[] {
  return [...groups.values()].sort((a, b) => (a.origin + a.reason < b.origin + b.reason ? -1 : 1)).map((g) =>
    `  queue '${g.origin}', ${g.reason}: ${g.count} (died ${when(g.oldest)} … ${when(g.newest)})`
  );
}

/** The groups as JSON records (times as ISO 8601). */
export function groupJson(groups: Map<string, Group>): object[] {
  return [...groups.values()].map((g) => ({
    origin: g.origin,
    reason: g.reason,
    count: g.count,
    oldest: g.oldest === undefined ? null : when(g.oldest),
    newest: g.newest === undefined ? null : when(g.newest),
  }));
}
