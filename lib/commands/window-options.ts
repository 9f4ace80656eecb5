/**
 * Reading what is there and stopping (kcat's -e), from N before a stream's end (-o -N) or up to a
 * time: consume's --exit-at-end, --last and --until, with their checks.
 */
import { type Command, InvalidArgumentError, type OptionValues } from "@commander-js/extra-typings";
import { streamOffset } from "../amqp/arguments.ts";
import { UsageError } from "../term/errors.ts";
import { integer } from "./options.ts";

/** --until: a time (ISO 8601) or an interval back (1h), as --offset takes them. */
function untilTime(value: string): Date | string {
  const parsed = (() => {
    try {
      return streamOffset(value);
    } catch {
      return undefined;
    }
  })();
  if (parsed instanceof Date) {
    if (parsed.getTime() > Date.now()) {
      throw new InvalidArgumentError(`--until ${value} is in the future: give a time that has passed`);
    }
    return parsed;
  }
  if (typeof parsed === "string" && !["first", "last", "next"].includes(parsed)) return parsed;
  throw new InvalidArgumentError("--until takes an ISO 8601 time or an interval back such as 1h or 30m");
}

// deno-lint-ignore no-explicit-any
export function windowOptions<A extends any[], O extends OptionValues, G extends OptionValues>(
  cmd: Command<A, O, G>,
) {
  return cmd
    .option(
      "--exit-at-end",
      "read what the queue holds now and stop (a stream: up to its last offset now); new arrivals stay",
    )
    .option(
      "--last <n>",
      "stream: start n messages before its end",
      integer("--last", 1, Number.MAX_SAFE_INTEGER),
    )
    .option(
      "--until <time>",
      "stream: stop at the first message at or after this time (ISO 8601, or 1h back)",
      untilTime,
    );
}

export interface WindowParsed {
  exitAtEnd?: true;
  last?: number;
  until?: Date | string;
  offset?: unknown;
  queue?: string;
}

/** The window asked for, or undefined; exit 2 for combinations that mean nothing. */
export function windowFrom(
  o: WindowParsed,
): { exitAtEnd: boolean; last?: number; until?: Date | string } | undefined {
  if (!o.exitAtEnd && o.last === undefined && o.until === undefined) return undefined;
  if (o.last !== undefined && o.offset !== undefined) {
    throw new UsageError("--last and --offset both say where to start: give one of them");
  }
  if (o.queue === "") {
    throw new UsageError(
      "--exit-at-end, --last and --until read a queue as it is: a new server-named queue (-q '') holds nothing yet",
    );
  }
  return { exitAtEnd: o.exitAtEnd === true, last: o.last, until: o.until };
}
