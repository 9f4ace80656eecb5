/**
 * What a publisher says when messages did not get through: the wording of its failures, kept
 * apart from the publishing itself.
 */
import { DeliveryError, ExitCode, InputError, KmqError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import type { OutMessage } from "./confirm-window.ts";

export interface PublishCounts {
  published: number;
  confirmed: number;
  returned: number;
  nacked: number;
  /** Sent again after a reconnect (they were unconfirmed when the connection was lost). */
  republished: number;
}

/** Exit 7 naming how many were returned or nacked and the first few of each; undefined when none. */
export function undelivered(
  c: PublishCounts,
  returned: string[],
  nacked: string[],
): DeliveryError | undefined {
  if (c.returned === 0 && c.nacked === 0) return undefined;
  const some = (samples: string[], count: number) =>
    `${samples.join(", ")}${count > samples.length ? ", …" : ""}`;
  const parts: string[] = [];
  if (c.returned) {
    parts.push(
      `${c.returned} returned as unroutable (${some(returned, c.returned)}): no queue is bound for them; ` +
        "bind one or pass --no-mandatory",
    );
  }
  if (c.nacked) parts.push(`${c.nacked} nacked by the broker (${some(nacked, c.nacked)})`);
  return new DeliveryError(
    `${c.returned + c.nacked} of ${c.published} messages not delivered: ${parts.join("; ")}`,
  );
}

/**
 * A channel the broker closed because of one message's data (too big, a foreign user_id) is bad
 * input (exit 3) naming that message; undefined for any other reason.
 */
export function inputAtFault(
  reason: string,
  unconfirmed: OutMessage[],
  delivered: number,
  progress: string,
): InputError | undefined {
  const tooBig = /message size (\d+) is larger than configured max size (\d+)/.exec(reason);
  if (tooBig) {
    const [size, max] = [Number(tooBig[1]), Number(tooBig[2])];
    const culprit = unconfirmed.find((m) => m.body.length === size) ??
      unconfirmed.find((m) => m.body.length > max);
    return new InputError(
      `${culprit?.origin ?? "a message"} is ${size} bytes, over the broker's max message size of ` +
        `${max} bytes: split it or raise max_message_size; ${delivered} message(s) confirmed so far`,
    );
  }
  const userId = /user_id property set to '(.*)' but authenticated user was '(.*)'/.exec(reason);
  if (userId) {
    const culprit = unconfirmed.find((m) => m.properties.userId === userId[1]);
    return new InputError(
      `${culprit?.origin ?? "a message"} has user_id '${userId[1]}', but the broker only takes ` +
        `the connected user's ('${userId[2]}'): drop user_id or connect as that user; ${progress}`,
    );
  }
  return undefined;
}

/** The step that failed: the exchange a refusal names (a record's own, with --jsonl) and its first message. */
export function failedStep(reason: string, unconfirmed: OutMessage[], defaultExchange: string): string {
  const named = /no exchange '([^']*)'|exchange '([^']*)'/.exec(reason);
  const name = named ? (named[1] ?? named[2] ?? "") : defaultExchange;
  const culprit = named ? unconfirmed.find((m) => m.exchange === name)?.origin : undefined;
  const target = name === "" ? "publishing" : `publishing to exchange '${name}'`;
  return culprit ? `${target} (${culprit})` : target;
}

/** Exit 6: the connection was lost again and again with nothing confirmed for --retry-timeout. */
export function stalledLoss(
  classified: KmqError,
  losses: number,
  stalledSeconds: number,
  retryTimeout: number,
  progress: string,
): KmqError {
  return new KmqError(
    ExitCode.brokerRefused,
    `${classified.message.replace(/; check that.*$/, "")}: the connection was lost ${losses} times with no ` +
      `message confirmed for ${Math.round(stalledSeconds)} s (--retry-timeout ${retryTimeout}): giving up, ` +
      `resending would repeat it; ${progress}`,
  );
}

/**
 * Returned messages, said when they happen and not only at the end (`tail -f log | kmq produce -l`
 * may never end): the first at once, then at most one line every 5 s with the count so far.
 */
export class ReturnNotes {
  /** The first few, named in the final error. */
  readonly samples: string[] = [];
  private lastNote = 0;

  constructor(private readonly log: Log) {}

  /** The `count`th return, `sample` naming it ("line 3 with routing key 'x'"). */
  add(count: number, sample: string): void {
    if (this.samples.length < 5) this.samples.push(sample);
    const now = Date.now();
    if (count > 1 && now - this.lastNote < 5000) return;
    this.lastNote = now;
    this.log.warn(
      count === 1
        ? `${sample} was returned as unroutable: no queue is bound for it (kmq carries on and exits 7 at ` +
          "the end; bind a queue, or pass --no-mandatory to let the broker drop such messages)"
        : `${count} messages returned as unroutable so far (the last: ${sample})`,
    );
  }
}
