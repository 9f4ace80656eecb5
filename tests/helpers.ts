/**
 * End-to-end helpers: every test spawns the real CLI (sources under Deno, or the binary named by
 * KMQ_BIN) against a real broker (KMQ_TEST_URL). Tests may use Deno APIs; lib/ may not.
 */
import { AMQPClient, type AMQPMessage } from "@cloudamqp/amqp-client";
import { assert } from "./assert.ts";

export const TEST_URL = Deno.env.get("KMQ_TEST_URL") ?? "amqp://guest:guest@127.0.0.1:5672/";
const ROOT = new URL("..", import.meta.url).pathname;
const BIN = Deno.env.get("KMQ_BIN");

export interface RunResult {
  code: number;
  stdout: string;
  stdoutBytes: Uint8Array;
  stderr: string;
}

export interface RunOptions {
  stdin?: string | Uint8Array;
  /** Added to the environment; KMQ_URL defaults to the test broker. */
  env?: Record<string, string>;
  /** Remove KMQ_URL, to test the built-in default. */
  noUrl?: boolean;
  cwd?: string;
  /** Start kmq in a session (and process group) of its own, as a terminal's job would be. */
  setsid?: boolean;
  /** Kill kmq (SIGKILL, exit 137) if it runs longer: a hang fails the test instead of stalling it. */
  timeoutMs?: number;
}

/** The program and leading arguments that start kmq: the binary, or the sources under Deno. */
export function kmqCommand(): [string, string[]] {
  return BIN
    ? [BIN.startsWith("/") ? BIN : `${ROOT}${BIN}`, []]
    : [Deno.execPath(), ["run", "-A", "--quiet", `${ROOT}main.ts`]];
}

function command(args: string[], options: RunOptions, stdin: "piped" | "null"): Deno.Command {
  const env: Record<string, string> = { NO_COLOR: "1", ...options.env };
  if (!options.noUrl && env.KMQ_URL === undefined) env.KMQ_URL = TEST_URL;
  const [kmq, pre] = kmqCommand();
  // not a group leader when spawned, setsid(1) execs kmq in place: the child's pid is the group's
  const [cmd, full] = options.setsid ? ["setsid", [kmq, ...pre, ...args]] : [kmq, [...pre, ...args]];
  return new Deno.Command(cmd, {
    args: full,
    env,
    cwd: options.cwd ?? ROOT,
    stdin,
    stdout: "piped",
    stderr: "piped",
  });
}

const decoder = new TextDecoder();

/** Runs kmq to completion: `{code, stdout, stderr}`. */
export async function run(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const child = command(args, options, options.stdin === undefined ? "null" : "piped").spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(
      typeof options.stdin === "string" ? new TextEncoder().encode(options.stdin) : options.stdin,
    )
      .catch(() => {});
    await writer.close().catch(() => {});
  }
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // ended already
    }
  }, options.timeoutMs);
  const out = await child.output().finally(() => clearTimeout(timer));
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stdoutBytes: out.stdout,
    stderr: decoder.decode(out.stderr),
  };
}

/** A kmq process left running (a consumer), read line by line while it runs. */
export class Running {
  readonly child: Deno.ChildProcess;
  private readonly chunks: Uint8Array[] = [];
  private stderrText = "";
  private readonly done: Promise<void>;
  /** Whether the process has ended (set as it ends; read without waiting). */
  exited = false;

  private readonly stdinWriter?: WritableStreamDefaultWriter<Uint8Array>;

  /** With `pipeStdin`, the test feeds stdin with {@link feed} and ends it with {@link endInput}. */
  constructor(args: string[], options: RunOptions & { pipeStdin?: boolean } = {}) {
    this.child = command(args, options, options.pipeStdin ? "piped" : "null").spawn();
    this.child.status.then(() => (this.exited = true));
    if (options.pipeStdin) this.stdinWriter = this.child.stdin.getWriter();
    const collect = async () => {
      for await (const chunk of this.child.stdout) this.chunks.push(chunk);
    };
    const collectErr = async () => {
      for await (const chunk of this.child.stderr) this.stderrText += decoder.decode(chunk);
    };
    this.done = Promise.all([collect(), collectErr()]).then(() => {});
  }

  get stdout(): string {
    return decoder.decode(concat(this.chunks));
  }

  get stderr(): string {
    return this.stderrText;
  }

  /** Waits until stdout holds at least n lines (or the deadline passes). */
  async waitForLines(n: number, timeoutMs = 10_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const lines = this.stdout.split("\n").filter((l) => l !== "");
      if (lines.length >= n) return lines;
      await sleep(25);
    }
    throw new Error(`timed out waiting for ${n} lines; got: ${JSON.stringify(this.stdout)} / ${this.stderr}`);
  }

  /** Waits until stderr contains the text (consumers log readiness with --verbose). */
  async waitForStderr(text: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.stderr.includes(text)) return;
      await sleep(25);
    }
    throw new Error(`timed out waiting for '${text}' on stderr; got: ${this.stderr}`);
  }

  /** Writes to kmq's stdin; resolves once the pipe took it (kmq may be slow to read). */
  async feed(text: string): Promise<void> {
    await this.stdinWriter!.write(new TextEncoder().encode(text));
  }

  async endInput(): Promise<void> {
    await this.stdinWriter!.close().catch(() => {});
  }

  kill(signal: Deno.Signal = "SIGINT"): void {
    try {
      this.child.kill(signal);
    } catch {
      // already gone
    }
  }

  /** Signals kmq's whole process group, as Ctrl-C in a terminal does (needs `setsid`). */
  async killGroup(signal: Deno.Signal): Promise<void> {
    await new Deno.Command("kill", { args: ["-s", signal, "--", `-${this.child.pid}`] }).output();
  }

  async result(): Promise<RunResult> {
    const status = await this.child.status;
    await this.done;
    const bytes = concat(this.chunks);
    return { code: status.code, stdout: decoder.decode(bytes), stdoutBytes: bytes, stderr: this.stderrText };
  }
}

/** Starts a consumer and returns once it is consuming (it logs that with --verbose). */
export async function startConsumer(args: string[], options: RunOptions = {}): Promise<Running> {
  const r = new Running(["-v", "consume", ...args], options);
  try {
    await r.waitForStderr("consuming from");
  } catch (err) {
    r.kill("SIGKILL");
    await r.result();
    throw err;
  }
  return r;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A name no other test (or test run) uses. */
export function unique(prefix = "kmq-test"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * A helper connection that opens again when the broker went away under it (the shared broker may
 * be restarted mid-run): a test's setup and cleanup then go on, rather than failing with
 * "Connection closed" for every test after the restart.
 */
export class ReopeningClient extends AMQPClient {
  override async channel(id?: number): ReturnType<AMQPClient["channel"]> {
    if (this.closed) await this.connect();
    try {
      return await super.channel(id);
    } catch (err) {
      // the socket died between the check and the channel: once more, on a new connection
      if (!this.closed) throw err;
      await this.connect();
      return await super.channel(id);
    }
  }
}

/** A direct connection to the test broker for setting up and inspecting, closed by the caller. */
export async function broker(url = TEST_URL): Promise<AMQPClient> {
  const client = new ReopeningClient(url);
  await client.connect();
  return client;
}

/**
 * Runs `fn` with a broker connection, then deletes the named queues and exchanges whatever
 * happened, so tests can share one broker.
 */
export async function withCleanup(
  names: { queues?: string[]; exchanges?: string[] },
  fn: (client: AMQPClient) => Promise<void>,
): Promise<void> {
  const client = await broker();
  try {
    await fn(client);
  } finally {
    for (const q of names.queues ?? []) {
      const ch = await client.channel();
      await ch.queueDelete(q).catch(() => {});
      await ch.close().catch(() => {});
    }
    for (const e of names.exchanges ?? []) {
      const ch = await client.channel();
      await ch.exchangeDelete(e).catch(() => {});
      await ch.close().catch(() => {});
    }
    await client.close().catch(() => {});
  }
}

/** Messages ready in a queue, or -1 when it does not exist. */
export async function queueDepth(client: AMQPClient, queue: string): Promise<number> {
  const ch = await client.channel();
  try {
    const ok = await ch.queueDeclare(queue, { passive: true });
    return ok.messageCount;
  } catch {
    return -1;
  } finally {
    await ch.close().catch(() => {});
  }
}

/** Takes every ready message off a queue (acked), in order. */
export async function drain(client: AMQPClient, queue: string): Promise<AMQPMessage[]> {
  const ch = await client.channel();
  const out: AMQPMessage[] = [];
  try {
    for (let m = await ch.basicGet(queue); m; m = await ch.basicGet(queue)) out.push(m);
  } finally {
    await ch.close().catch(() => {});
  }
  return out;
}

/** Declares a durable queue bound to a durable direct exchange, as kmq would. */
export async function declarePair(client: AMQPClient, exchange: string, queue: string, key: string) {
  const ch = await client.channel();
  await ch.exchangeDeclare(exchange, "direct", { durable: true });
  await ch.queueDeclare(queue, { durable: true });
  await ch.queueBind(queue, exchange, key);
  await ch.close();
}

/** Publishes raw messages with the library, for consume tests that need exact properties. */
export async function publishRaw(
  client: AMQPClient,
  exchange: string,
  key: string,
  body: string | Uint8Array,
  properties: Parameters<import("@cloudamqp/amqp-client").AMQPChannel["basicPublish"]>[3] = {},
): Promise<void> {
  const ch = await client.channel();
  await ch.confirmSelect();
  await ch.basicPublish(exchange, key, body, properties);
  await ch.close();
}

/** The checks every failing run must pass: its exit code, one line on stderr, no stack trace. */
export function assertFailure(r: RunResult, code: number, pattern: RegExp): void {
  const lines = r.stderr.trimEnd().split("\n");
  const context = `exit ${r.code}, stderr: ${r.stderr}`;
  assert(r.code === code, `expected exit ${code}; ${context}`);
  assert(lines.length === 1, `expected one line on stderr; ${context}`);
  assert(pattern.test(r.stderr), `stderr does not match ${pattern}; ${context}`);
  assert(!/\n\s+at /.test(r.stderr) && !/Error: /.test(r.stderr), `stack trace on stderr; ${context}`);
}

/**
 * Runs `fn` with a fresh durable direct exchange and durable queue bound with key 'k', both
 * removed afterwards.
 */
export function withPair(
  fn: (names: { ex: string; q: string }, client: AMQPClient) => Promise<void>,
): Promise<void> {
  const ex = unique("kmq-ex");
  const q = unique("kmq-q");
  return withCleanup({ queues: [q], exchanges: [ex] }, async (client) => {
    await declarePair(client, ex, q, "k");
    await fn({ ex, q }, client);
  });
}

/**
 * Whether Debian's python3 can import the module; tests that need it are skipped when not —
 * except in CI, which installs it, so there a missing module fails them instead.
 */
export async function skipWithoutPython(module: string): Promise<boolean> {
  try {
    const r = await new Deno.Command("/usr/bin/python3", { args: ["-c", `import ${module}`], stderr: "null" })
      .output();
    if (r.success) return false;
  } catch {
    // no python3
  }
  return Deno.env.get("CI") !== "true";
}
