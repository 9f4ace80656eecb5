/**
 * An entity that exists with other arguments than a declaration asks for. RabbitMQ names one
 * difference per refusal ("inequivalent arg 'x' … received A but current is B"); kmq declares
 * again with each current value adopted until a declaration matches — one equal to the existing
 * queue changes nothing — so every difference is known and reported at once.
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { flagFor } from "./arguments.ts";
import { ExitCode, KmqError } from "../term/errors.ts";

export interface Mismatch {
  kind: "queue" | "exchange";
  name: string;
  argument: string;
  /** As the broker words them: "none", "'true'", "the value 'quorum' of type 'longstr'". */
  received: string;
  current: string;
}

export interface QueueFlags {
  durable: boolean;
  autoDelete: boolean;
  exclusive: boolean;
}

/** Declarations tried at most: one per argument the broker checks, and the flags. */
const MAX_PROBES = 24;

/**
 * RabbitMQ's "inequivalent arg 'x' for queue 'q' …: received A but current is B", taken apart (the
 * client adds the reply code, " (406)", which is no part of B).
 */
export function inequivalent(err: unknown): Mismatch | undefined {
  const text = err instanceof Error ? err.message : String(err);
  const m =
    /inequivalent arg '([^']+)' for (queue|exchange) '([^']*)' in vhost '[^']*': received (.+?) but current is (.+?)(?: \(\d+\))?(?:; |$)/
      .exec(text);
  return m
    ? { argument: m[1]!, kind: m[2] as Mismatch["kind"], name: m[3]!, received: m[4]!, current: m[5]! }
    : undefined;
}

/** 'quorum' from "the value 'quorum' of type 'longstr'", 'true' from "'true'", none from "none". */
export function valueOf(worded: string): string {
  return /'([^']*)'/.exec(worded)?.[1] ?? worded;
}

/** "with x-queue-type 'quorum'", "without x-message-ttl". */
export function existing(m: Mismatch): string {
  const current = valueOf(m.current);
  return current === "none" ? `without ${m.argument}` : `with ${m.argument} '${current}'`;
}

/**
 * Declares `queue` with `args` and `flags`, adopting each value the broker says differs, until a
 * declaration matches. Returns the queue's own arguments and flags, and each difference in the
 * order the broker named them. The queue must exist (a declaration would create it).
 */
export async function matchQueue(
  client: AMQPClient,
  queue: string,
  wanted: { flags: QueueFlags; args: Record<string, unknown> },
): Promise<{ args: Record<string, unknown>; flags: QueueFlags; mismatches: Mismatch[] }> {
  const args = { ...wanted.args };
  const flags = { ...wanted.flags };
  const mismatches: Mismatch[] = [];
  for (let i = 0; i < MAX_PROBES; i++) {
    const ch = await client.channel();
    try {
      await ch.queueDeclare(queue, flags, args);
      await ch.close().catch(() => {});
      return { args, flags, mismatches };
    } catch (err) {
      // another connection's exclusive queue: nothing more can be learned
      if (/RESOURCE_LOCKED/.test(String(err))) return { args, flags, mismatches };
      const m = inequivalent(err);
      if (!m) throw err;
      const tries = mismatches.filter((seen) => seen.argument === m.argument).length;
      if (tries === 0) mismatches.push(m);
      adopt(m, flags, args, tries);
    }
  }
  throw new Error(`queue '${queue}': its arguments could not be matched in ${MAX_PROBES} declarations`);
}

/**
 * Takes the broker's current value into the declaration. Where the broker words it without a type
 * ('10'), it has the type of the value asked for: a number asked for is answered as a number. A
 * difference named again for the same argument means that guess was wrong: the other types follow.
 */
function adopt(m: Mismatch, flags: QueueFlags, args: Record<string, unknown>, tries: number): void {
  const current = valueOf(m.current);
  if (m.argument === "durable") flags.durable = current === "true";
  else if (m.argument === "auto_delete") flags.autoDelete = current === "true";
  else if (m.argument === "exclusive") flags.exclusive = current === "true";
  else if (m.current === "none") delete args[m.argument];
  else if (/of type '(?:long|signedint|short|byte|unsignedint|unsignedshort|unsignedbyte)'/.test(m.current)) {
    args[m.argument] = Number(current);
  } else if (/of type 'bool'/.test(m.current)) args[m.argument] = current === "true";
  else if (/of type /.test(m.current)) args[m.argument] = current;
  else {
    const asked = args[m.argument];
    const guesses: unknown[] = [current];
    if (/^-?\d+$/.test(current)) guesses.unshift(Number(current));
    if (current === "true" || current === "false") guesses.unshift(current === "true");
    if (typeof asked === "string") guesses.sort((a) => (typeof a === "string" ? -1 : 1));
    args[m.argument] = guesses[tries % guesses.length];
  }
}

/** "a number" from "the value '10' of type 'signedint'"; undefined where the broker names no type. */
function typeOf(worded: string): string | undefined {
  const type = /of type '([a-z]+)'/.exec(worded)?.[1];
  if (type === undefined) return undefined;
  if (type === "longstr") return "a string";
  if (type === "bool") return "a boolean";
  return /int|long|short|byte/.test(type) ? "a number" : `of AMQP type ${type}`;
}

interface Difference {
  /** "x-queue-type 'quorum'", "without x-message-ttl" */
  exists: string;
  /** "'classic'", "none" */
  asks: string;
  /** The flag that would match ("--queue-type quorum"), or what to drop. */
  fix: { with: string } | { drop: string };
}

/**
 * How one difference reads. `asked` is the value the command line gave: where the broker words
 * both sides alike ('10' and '10'), they differ in type, and that decides the hint.
 */
function difference(m: Mismatch, asked?: unknown): Difference {
  const current = valueOf(m.current);
  const sameText = m.current !== "none" && m.received !== "none" && valueOf(m.received) === current;
  const askedType = typeof asked === "string"
    ? "a string"
    : asked === undefined
    ? undefined
    : "a typed value";
  const [has, wants] = [
    typeOf(m.current) ?? (sameText && askedType === "a string" ? "a number or boolean" : undefined),
    typeOf(m.received) ?? (sameText ? askedType : undefined),
  ];
  // the same text of different types ('10' the number, '10' the string) must say which is which
  const showTypes = sameText || (has !== undefined && wants !== undefined && has !== wants);
  const typed = (v: string, t?: string) => showTypes && t ? `'${v}' (${t})` : `'${v}'`;
  return {
    exists: current === "none" ? existing(m) : `with ${m.argument} ${typed(current, has)}`,
    asks: m.received === "none" ? "none" : typed(valueOf(m.received), wants),
    fix: current === "none" ? { drop: flagFor(m.argument, "").trim() } : {
      with: flagFor(
        m.argument,
        current,
        has !== undefined ? has !== "a string" : typeof asked !== "string",
      ),
    },
  };
}

/** A policy that applies to the queue: its name and definition (the management API's). */
export interface AppliedPolicy {
  name: string;
  definition: Record<string, unknown>;
}

/**
 * Exit 6 naming every difference and the flags that would match them all. A policy that sets one
 * of the differing settings is named: its value is not an argument, and may be what was meant.
 */
export function queueConflict(
  queue: string,
  mismatches: Mismatch[],
  asked: Record<string, unknown>,
  policy?: AppliedPolicy,
): KmqError {
  const diffs = mismatches.map((m) => difference(m, asked[m.argument]));
  const [first, ...rest] = diffs;
  const what = [
    `it exists ${first!.exists} where the command line asks for ${first!.asks}`,
    ...rest.map((d) => `${d.exists} where it asks for ${d.asks}`),
  ].join(", and ");
  const withs = diffs.flatMap((d) => "with" in d.fix ? [d.fix.with] : []);
  const drops = diffs.flatMap((d) => "drop" in d.fix ? [d.fix.drop] : []);
  const match = [
    ...(withs.length ? [`declare it with ${withs.join(" ")}`] : []),
    ...(drops.length ? [`drop ${drops.join(" ")}`] : []),
  ].join(" and ");
  return new KmqError(
    ExitCode.brokerRefused,
    `declaring queue '${queue}': ${what}${policyNote(mismatches, policy)}: ` +
      `${match} to match, give no queue options to use it as it is, or delete it first`,
  );
}

/** "; policy 'limits' sets its max-length to 1000 (a policy, not an argument)" where it applies. */
function policyNote(mismatches: Mismatch[], policy?: AppliedPolicy): string {
  if (!policy) return "";
  const keys = mismatches.map((m) => m.argument.replace(/^x-/, "")).filter((k) => k in policy.definition);
  if (keys.length === 0) return "";
  const set = keys.map((k) => `${k} ${JSON.stringify(policy.definition[k])}`).join(", ");
  return ` (policy '${policy.name}' sets ${set} on it: a policy, not an argument — rabbitmqctl list_policies)`;
}
