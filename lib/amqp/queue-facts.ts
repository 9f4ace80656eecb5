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
import { type AppliedPolicy, matchQueue } from "./mismatch.ts";
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

/** The queue's type and `x-` arguments, read from the broker's refusals of a matching declaration. */
async function probeArguments(client: AMQPClient, queue: string): Promise<Record<string, unknown>> {
  const flags = { durable: true, autoDelete: false, exclusive: false };
  return (await matchQueue(client, queue, { flags, args: {} })).args;
}

/** [major, minor] of a version such as "3.10.8" or "4.3.0-beta.1". */
function versionOf(v: string | undefined): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(v ?? "");
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/** The policy that applies to the queue, from the management API; undefined if none or it did not answer. */
export async function appliedPolicy(
  broker: BrokerOptions,
  vhost: string,
  queue: string,
): Promise<AppliedPolicy | undefined> {
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
    if (!q.policy || !q.effective_policy_definition) return { name: "", definition: {} };
    return { name: q.policy, definition: q.effective_policy_definition };
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
  const policy = await appliedPolicy(broker, client.vhost, queue);
  const limit = policy?.definition["delivery-limit"];
  if (policy === undefined) facts.limitKnown = facts.deliveryLimit !== undefined;
  else if (typeof limit === "number" && (facts.deliveryLimit === undefined || limit < facts.deliveryLimit)) {
    facts.deliveryLimit = limit;
    facts.limitSource = `policy '${policy.name}'`;
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
