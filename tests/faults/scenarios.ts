/**
 * Shared machinery of the fault suite (`deno task test:faults`): numbered messages, a tally of
 * what came out against what went in, a deadline for every run, and the figures report.
 */
import { AMQPClient } from "@cloudamqp/amqp-client";
import { assert } from "../assert.ts";
import { type Running, type RunResult, sleep } from "../helpers.ts";
import { PrivateBroker } from "../private_broker.ts";
import { CuttableProxy } from "../proxy.ts";

export { linesOf, numbered, type Tally, tally } from "../tally.ts";
import { type Tally, tally } from "../tally.ts";

/**
 * Every message in the queue, taken with auto-ack through the library (not kmq, which is what is
 * under test); stops once the queue stayed empty for half a second.
 */
export async function takeAll(url: string, queue: string): Promise<string[]> {
  const client = new AMQPClient(url);
  await client.connect();
  try {
    const ch = await client.channel();
    await ch.basicQos(1000);
    const bodies: string[] = [];
    let last = Date.now();
    const consumer = await ch.basicConsume(queue, { noAck: true }, (m) => {
      bodies.push(m.bodyToString() ?? "");
      last = Date.now();
    });
    while (Date.now() - last < 500) await sleep(100);
    await consumer.cancel();
    return bodies;
  } finally {
    await client.close().catch(() => {});
  }
}

/** Publishes 1..n (persistent, confirmed) with the library, so a consume scenario starts full. */
export async function fill(url: string, queue: string, n: number, from = 1): Promise<void> {
  const client = new AMQPClient(url);
  await client.connect();
  try {
    let ch = await client.channel();
    try {
      // passive first: a queue the test declared with arguments stays as it is
      await ch.queueDeclare(queue, { passive: true });
    } catch {
      ch = await client.channel(); // the failed check closed the first one
      await ch.queueDeclare(queue, { durable: true });
    }
    await ch.confirmSelect();
    let pending: Promise<unknown>[] = [];
    for (let i = from; i < from + n; i++) {
      pending.push(ch.basicPublish("", queue, String(i), { deliveryMode: 2 }));
      if (pending.length === 1000) {
        await Promise.all(pending);
        pending = [];
      }
    }
    await Promise.all(pending);
  } finally {
    await client.close().catch(() => {});
  }
}

/** The run's result, or — past the deadline — the process killed and the test failed: nothing hangs. */
export async function finish(r: Running, deadlineMs: number, what: string): Promise<RunResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), deadlineMs)));
  const outcome = await Promise.race([r.result(), late]);
  clearTimeout(timer);
  if (outcome === "late") {
    r.kill("SIGKILL");
    const partial = await r.result();
    throw new Error(`${what} did not finish within ${deadlineMs / 1000} s; stderr: ${partial.stderr}`);
  }
  return outcome;
}

/** Polls until `ok()` holds; fails the test (with `what`) past the deadline. */
export async function waitFor(
  ok: () => boolean | Promise<boolean>,
  deadlineMs: number,
  what: string,
  state: () => string | Promise<string> = () => "",
) {
  const deadline = Date.now() + deadlineMs;
  while (!(await ok())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${deadlineMs / 1000} s waiting for ${what}; ${await state()}`);
    }
    await sleep(25);
  }
}

/** One line of figures per scenario run, appended to $KMQ_FAULT_REPORT (scripts/faults.sh sums them). */
async function report(scenario: string, t: Tally, seconds: number, note?: string): Promise<void> {
  const line = JSON.stringify({ scenario, ...t, seconds: Number(seconds.toFixed(1)), note });
  console.log(`figures: ${line}`);
  const file = Deno.env.get("KMQ_FAULT_REPORT");
  if (file) await Deno.writeTextFile(file, line + "\n", { append: true });
}

/**
 * Counts what came out against the `sent` numbered messages, reports the figures and fails the
 * test if any message was lost: the check every scenario ends with.
 */
export async function account(
  scenario: string,
  sent: number,
  bodies: Iterable<string>,
  started: number,
  note?: string,
): Promise<Tally> {
  const t = tally(sent, bodies);
  await report(scenario, t, (performance.now() - started) / 1000, note);
  assert(t.lost === 0, `${t.lost} of ${sent} messages lost in '${scenario}'`);
  return t;
}

/** Runs `fn` against a private RabbitMQ node that is stopped and removed afterwards, whatever happens. */
async function withNode(fn: (node: PrivateBroker) => Promise<void>): Promise<void> {
  const node = new PrivateBroker();
  try {
    await node.start();
    await fn(node);
  } finally {
    await node.close();
  }
}

/** {@link withNode} with a cuttable TCP proxy in front of the node, closed afterwards too. */
function withProxiedNode(
  fn: (node: PrivateBroker, proxy: CuttableProxy) => Promise<void>,
): Promise<void> {
  return withNode(async (node) => {
    const proxy = new CuttableProxy({ hostname: "127.0.0.1", port: node.port });
    try {
      await fn(node, proxy);
    } finally {
      await proxy.close();
    }
  });
}

/** A fault scenario: a test with a private node of its own (its processes outlive single steps). */
export function scenario(name: string, fn: (node: PrivateBroker) => Promise<void>): void {
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn: () => withNode(fn) });
}

/** A fault scenario with a cuttable proxy in front of its node. */
export function proxiedScenario(
  name: string,
  fn: (node: PrivateBroker, proxy: CuttableProxy) => Promise<void>,
): void {
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn: () => withProxiedNode(fn) });
}
