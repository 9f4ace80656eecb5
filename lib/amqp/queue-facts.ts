/**
 * What kind of queue a name is, and whether putting a message back into it costs anything: a
 * quorum queue counts every requeue toward its delivery limit (before RabbitMQ 4.3 a requeue by
 * nack, cancel or channel close all count; from 4.3 only basic.reject does), and past the limit
 * the broker drops or dead-letters the message. kmq puts messages back when it peeks, when
 * --filter holds a non-matching message, and when a consumer stops with messages in hand.
 *
 * AMQP has no "describe queue": the type and arguments are learned by declaring the queue with
 * what is known so far and reading the broker's "inequivalent arg" refusals, until the declaration
 * matches (a declaration equal to the existing queue changes nothing). A delivery limit set by a
 * policy is seen only through the management API, when it answers.
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { brokerVersion } from "./client-fixes.ts";
import type { BrokerOptions } from "./connection.ts";
import { inequivalent, valueOf } from "./declarations.ts";
import { UsageError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import { getJson, managementApi } from "./management.ts";

export interface QueueFacts {
  type: string;
  /** The delivery limit that applies (argument, policy or the broker's default); undefined: none. */
  deliveryLimit?: number;
  /** Where it comes from: "x-delivery-limit", "policy 'p'", "RabbitMQ 4's default". */
  limitSource?: string;
  /** false when a policy could set a limit kmq cannot see (no management API). */
  limitKnown: boolean;
  /** A requeue counts as a delivery (quorum queues before RabbitMQ 4.3). */
  requeueCounts: boolean;
}

/** Declarations tried at most: one per argument the broker checks, and the flags. */
const MAX_PROBES = 24;

/** The queue's type and `x-` arguments, read from the broker's refusals of a matching declaration. */
async function probeArguments(client: AMQPClient, queue: string): Promise<Record<string, unknown>> {
  const args: Record<string, unknown> = {};
  const flags = { durable: true, autoDelete: false, exclusive: false };
  for (let i = 0; i < MAX_PROBES; i++) {
    const ch = await client.channel();
    try {
      await ch.queueDeclare(queue, flags, args);
      await ch.close().catch(() => {});
      return args;
    } catch (err) {
      // another connection's exclusive queue: exclusive queues are always classic
      if (/RESOURCE_LOCKED/.test(String(err))) return args;
      const m = inequivalent(err);
      if (!m) throw err;
      const current = valueOf(m.current);
      if (m.argument === "durable") flags.durable = current === "true";
      else if (m.argument === "auto_delete") flags.autoDelete = current === "true";
      else if (m.argument === "exclusive") flags.exclusive = current === "true";
      else if (m.current === "none") delete args[m.argument];
      else {args[m.argument] =
          /of type '(?:long|signedint|short|byte|unsignedint|unsignedshort|unsignedbyte)'/
              .test(m.current)
            ? Number(current)
            : /of type 'bool'/.test(m.current)
            ? current === "true"
            : current;}
    }
  }
  throw new Error(`queue '${queue}': its arguments could not be matched in ${MAX_PROBES} declarations`);
}

/** [major, minor] of a version such as "3.10.8" or "4.3.0-beta.1". */
function versionOf(v: string | undefined): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(v ?? "");
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/** The delivery limit a policy sets on the queue, from the management API; undefined if it did not answer. */
async function policyLimit(
  broker: BrokerOptions,
  vhost: string,
  queue: string,
): Promise<{ limit?: number; policy?: string } | undefined> {
  try {
    const api = await managementApi(broker);
    const q = await getJson(
      api,
      `queues/${encodeURIComponent(vhost)}/${encodeURIComponent(queue)}`,
      3_000,
    ) as {
      policy?: string;
      effective_policy_definition?: Record<string, unknown>;
    };
    const limit = q.effective_policy_definition?.["delivery-limit"];
    return { limit: typeof limit === "number" ? limit : undefined, policy: q.policy };
  } catch {
    return undefined;
  }
}

export async function queueFacts(
  client: AMQPClient,
  queue: string,
  broker: BrokerOptions,
): Promise<QueueFacts> {
  const args = await probeArguments(client, queue);
  const type = String(args["x-queue-type"] ?? "classic");
  const [major, minor] = versionOf(brokerVersion(client));
  const requeueCounts = type === "quorum" && (major < 4 || (major === 4 && minor < 3));
  const facts: QueueFacts = { type, limitKnown: true, requeueCounts };
  if (type !== "quorum") return facts;
  const argument = args["x-delivery-limit"];
  if (typeof argument === "number") {
    facts.deliveryLimit = argument;
    facts.limitSource = "x-delivery-limit";
  }
  const policy = await policyLimit(broker, client.vhost, queue);
  if (policy === undefined) facts.limitKnown = facts.deliveryLimit !== undefined;
  else if (
    policy.limit !== undefined && (facts.deliveryLimit === undefined || policy.limit < facts.deliveryLimit)
  ) {
    facts.deliveryLimit = policy.limit;
    facts.limitSource = `policy '${policy.policy ?? "?"}'`;
  }
  if (facts.deliveryLimit === undefined && major === 4) {
    facts.deliveryLimit = 20;
    facts.limitSource = "RabbitMQ 4's default";
  }
  return facts;
}

/**
 * Before kmq takes messages it will put back (`what`: "peek", "--filter"): on a quorum queue
 * where a requeue counts toward a delivery limit (or a limit kmq cannot see), exit 2 unless
 * `accepted`; otherwise a note of what the requeue does. Returns the facts.
 */
export async function guardRequeues(
  client: AMQPClient,
  queue: string,
  broker: BrokerOptions,
  what: string,
  accepted: boolean,
  log: Log,
): Promise<QueueFacts> {
  const facts = await queueFacts(client, queue, broker);
  if (facts.type !== "quorum") return facts;
  if (facts.requeueCounts && (facts.deliveryLimit !== undefined || !facts.limitKnown)) {
    const limit = facts.deliveryLimit !== undefined
      ? `a delivery limit of ${facts.deliveryLimit} (${facts.limitSource})`
      : "a delivery limit kmq cannot see (a policy may set one; the management API did not answer)";
    const risk = `queue '${queue}' is a quorum queue with ${limit}: every message ${what} puts back counts ` +
      `one delivery toward it, and past it the broker drops or dead-letters the message`;
    if (!accepted) throw new UsageError(`${risk}; add --accept-delivery-count to take that risk`);
    log.warn(`${risk} (accepted with --accept-delivery-count)`);
  } else if (facts.requeueCounts) {
    log.info(
      `queue '${queue}' is a quorum queue without a delivery limit: ${what} raises each x-delivery-count it puts back`,
    );
  }
  log.warn(
    `queue '${queue}' is a quorum queue: what ${what} puts back goes behind the messages not taken, ` +
      "in an order RabbitMQ does not keep",
  );
  return facts;
}
