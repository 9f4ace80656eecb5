/**
 * A `kmq bench` run: declares its queues under a unique prefix, opens every consumer and then
 * every producer (each on a connection of its own), publishes until the duration or count is
 * reached, waits for the confirms and for the consumers to catch up, asks the broker what is
 * left, reports, and deletes what it declared — after Ctrl-C too.
 */
import type { AMQPClient } from "@cloudamqp/amqp-client";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import type { Writable } from "node:stream";
import { closeQuietly, connect } from "../amqp/connection.ts";
import { attempt, existingQueue } from "../amqp/entities.ts";
import { queueFacts } from "../amqp/queue-facts.ts";
import { ExitCode, InputError, KmqError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import { liveLine, type ProgressStream } from "../term/progress.ts";
import { BenchConsumer } from "./bench-consumer.ts";
import type { BenchOptions } from "./bench-options.ts";
import { BenchProducer } from "./bench-producer.ts";
import { type BenchFigures, reportJson, reportText } from "./bench-report.ts";
import { Latency } from "./latency.ts";
import { LiveFigures } from "./live-figures.ts";

export interface BenchIo {
  stdout: Writable;
  stderr: ProgressStream;
  log: Log;
  stop: AbortSignal;
}

/** Confirms still due when the producers stop are waited for this long at most. */
const CONFIRM_DRAIN_MS = 10_000;
/** The consumers are waited for while they keep receiving; this long without a message ends the wait. */
const RECEIVE_IDLE_MS = 3_000;

export async function runBench(o: BenchOptions, io: BenchIo): Promise<void> {
  const run = new BenchRun(o, io);
  try {
    await run.prepare();
    await run.measure();
  } finally {
    await run.cleanUp();
  }
  await run.report();
  if (io.stop.aborted) {
    const signal = String(io.stop.reason);
    throw new KmqError(
      signal === "SIGINT" ? ExitCode.interrupted : ExitCode.terminated,
      `stopped by ${signal}: the figures above cover the run until then` +
        (o.predeclared ? "" : "; the bench's queues are deleted"),
    );
  }
}

class BenchRun {
  private readonly runTag = randomBytes(4).readUInt32BE(0);
  private readonly queues: string[];
  private readonly declared: string[] = [];
  private admin?: AMQPClient;
  private readonly e2e = new Latency();
  private readonly confirms = new Latency();
  private readonly live = new LiveFigures();
  private producers: BenchProducer[] = [];
  private consumers: BenchConsumer[] = [];
  private started = 0;
  private sendEnded = 0;
  private backlog = 0;
  private left: number | null = null;

  constructor(private o: BenchOptions, private readonly io: BenchIo) {
    const prefix = `kmq-bench-${randomBytes(4).toString("hex")}`;
    this.queues = o.predeclared
      ? [o.predeclared]
      : Array.from({ length: o.queues }, (_, i) => `${prefix}-${i + 1}`);
  }

  async prepare(): Promise<void> {
    // a histogram file that cannot be written is found out before the run, not after it
    for (const [flag, path] of [["--hgrm", this.o.hgrm], ["--confirm-hgrm", this.o.confirmHgrm]]) {
      if (path !== undefined) await writable(flag!, path);
    }
    this.admin = await connect({ broker: this.o.broker, name: "kmq bench", log: this.io.log });
    if (this.o.predeclared) {
      await existingQueue(this.admin, this.o.predeclared, "bench");
      // a stream is read from its end, and has no depth to check: its type is the broker's to say
      const facts = await queueFacts(this.admin, this.o.predeclared, this.o.broker);
      this.o = { ...this.o, queueType: facts.type as BenchOptions["queueType"] };
    } else await this.declareQueues(this.admin);
    const o = this.o;
    const pick = (i: number) => this.queues[i % this.queues.length]!;
    const [e2e, confirms] = [[this.e2e, this.live.e2e], [this.confirms, this.live.confirms]];
    this.consumers = Array.from(
      { length: o.consumers },
      (_, i) => new BenchConsumer(o, pick(i), this.runTag, e2e, this.io.stop, this.io.log),
    );
    this.producers = Array.from(
      { length: o.producers },
      (_, i) => new BenchProducer(o, i, pick(i), this.runTag, confirms, this.io.log),
    );
    await Promise.all(this.consumers.map((c) => c.open()));
    await Promise.all(this.producers.map((p) => p.open()));
  }

  private async declareQueues(client: AMQPClient): Promise<void> {
    const ch = await client.channel();
    for (const name of this.queues) {
      await attempt(
        `declaring queue '${name}'`,
        () => ch.queueDeclare(name, { durable: true }, { "x-queue-type": this.o.queueType }),
      );
      this.declared.push(name);
      this.io.log.info(`declared ${this.o.queueType} queue '${name}'`);
    }
    await ch.close();
  }

  /** Publishes (or, with no producers, only receives) until a limit, then lets the consumers catch up. */
  async measure(): Promise<void> {
    const o = this.o;
    this.started = performance.now();
    const until = o.duration !== undefined ? this.started + o.duration * 1000 : Infinity;
    const stopLine = liveLine(this.io.stderr, () => this.live.forms());
    const ticker = setInterval(() => this.live.tick(this.totals()), 1000);
    try {
      if (this.producers.length > 0) {
        await Promise.all(this.producers.map((p) => p.run({ until, stop: this.io.stop })));
      } else {
        await this.waitWhile(() => performance.now() < until && this.received() < (o.count ?? Infinity), 0);
      }
      this.backlog = Math.max(0, this.sent() - this.received());
      await Promise.all(this.producers.map((p) => p.drain(this.io.stop.aborted ? 1000 : CONFIRM_DRAIN_MS)));
      // sent means taken by the broker: confirmed, or (without confirms) answered behind a
      // channel.close, not merely handed to the socket's buffer
      this.sendEnded = performance.now();
      if (this.producers.length > 0 && this.consumers.length > 0) {
        await this.waitWhile(() => this.received() < this.expected(), RECEIVE_IDLE_MS);
      }
    } finally {
      clearInterval(ticker);
      stopLine();
      await Promise.all([...this.producers, ...this.consumers].map((x) => x.close()));
    }
    if (o.queueType !== "stream" && this.admin) this.left = await this.depth(this.admin);
  }

  /**
   * Polls `busy` until it is false or the run is stopped; with `idleMs`, also until that long
   * passed without a message received.
   */
  private async waitWhile(busy: () => boolean, idleMs: number): Promise<void> {
    let last = this.received();
    let lastChange = performance.now();
    while (busy() && !this.io.stop.aborted) {
      await new Promise((r) => setTimeout(r, 20));
      const now = this.received();
      if (now !== last) [last, lastChange] = [now, performance.now()];
      else if (idleMs > 0 && performance.now() - lastChange > idleMs) return;
    }
  }

  /** Ready plus unacked messages in the bench's queues, as the broker counts them. */
  private async depth(client: AMQPClient): Promise<number> {
    const ch = await client.channel();
    let total = 0;
    for (const name of this.queues) total += (await ch.queueDeclare(name, { passive: true })).messageCount;
    await ch.close();
    return total;
  }

  /**
   * Deletes the queues the run declared (also when it failed or was stopped); one that cannot be
   * deleted is named on stderr rather than hiding why the run ended.
   */
  async cleanUp(): Promise<void> {
    try {
      if (this.declared.length > 0) await this.deleteQueues();
    } catch (err) {
      this.io.log.warn(
        `could not delete the bench's queues (${(err as Error).message}): delete them with ` +
          this.declared.map((q) => `'kmq delete queue ${q}'`).join(", "),
      );
    } finally {
      if (this.admin) await closeQuietly(this.admin);
    }
  }

  private async deleteQueues(): Promise<void> {
    const client = this.admin && !this.admin.closed
      ? this.admin
      : await connect({ broker: this.o.broker, name: "kmq bench", log: this.io.log });
    try {
      const ch = await client.channel();
      for (const name of [...this.declared]) {
        await ch.queueDelete(name);
        this.declared.shift();
        this.io.log.info(`deleted queue '${name}'`);
      }
      await ch.close();
    } finally {
      if (client !== this.admin) await closeQuietly(client);
    }
  }

  async report(): Promise<void> {
    const f = this.figures();
    this.io.stdout.write(this.o.json ? reportJson(f) : reportText(f, this.o));
    if (this.o.hgrm) await writeFile(this.o.hgrm, this.e2e.hgrm());
    if (this.o.confirmHgrm) await writeFile(this.o.confirmHgrm, this.confirms.hgrm());
    if (f.left_in_queues && f.consumers > 0) {
      this.io.log.warn(`${f.left_in_queues} message(s) were left in the bench's queues at the end`);
    }
  }

  private sent(): number {
    return this.producers.reduce((n, p) => n + p.counts.published, 0);
  }

  /**
   * What the consumers should receive of what was sent: each message once, but on a stream every
   * consumer of it reads all of it.
   */
  private expected(): number {
    if (this.o.queueType !== "stream") return this.sent();
    const readers = (queue: string) => this.consumers.filter((c) => c.queue === queue).length;
    return this.producers.reduce((n, p) => n + p.counts.published * readers(p.queue), 0);
  }

  private received(): number {
    return this.consumers.reduce((n, c) => n + c.received, 0);
  }

  private totals() {
    const sum = (key: "confirmed" | "returned" | "nacked") =>
      this.producers.reduce((n, p) => n + p.counts[key], 0);
    return {
      sent: this.sent(),
      confirmed: sum("confirmed") - sum("returned"),
      returned: sum("returned"),
      nacked: sum("nacked"),
      received: this.received(),
    };
  }

  private figures(): BenchFigures {
    const o = this.o;
    const t = this.totals();
    const sendSeconds = Math.max(1e-3, ((this.sendEnded || performance.now()) - this.started) / 1000);
    const lastReceived = Math.max(...this.consumers.map((c) => c.lastAt), this.started);
    const receiveSeconds = Math.max(1e-3, (lastReceived - this.started) / 1000);
    // the consumers kept up if they were done soon after the producers: within a second, or a
    // tenth of the time spent sending (a backlog held in their prefetch counts as behind too)
    const catchUp = (lastReceived - (this.sendEnded || lastReceived)) / 1000;
    const behind = o.producers > 0 && o.consumers > 0 && !this.io.stop.aborted &&
      (t.received < this.expected() || catchUp > Math.max(1, sendSeconds / 10));
    return {
      producers: o.producers,
      consumers: o.consumers,
      queue_type: o.queueType,
      queues: this.queues,
      size: o.body?.length ?? o.size,
      rate: o.rate,
      confirm_window: o.confirm,
      persistent: o.persistent,
      ...t,
      foreign: this.consumers.reduce((n, c) => n + c.foreign, 0),
      duration_s: Number(((performance.now() - this.started) / 1000).toFixed(3)),
      send_rate: o.producers > 0 ? Math.round(t.sent / sendSeconds) : 0,
      receive_rate: t.received > 0 ? Math.round(t.received / receiveSeconds) : 0,
      latency_ms: this.e2e.count > 0 ? this.e2e.summary() : null,
      confirm_latency_ms: this.confirms.count > 0 ? this.confirms.summary() : null,
      coordinated_omission_corrected: o.rate > 0,
      backlog_at_send_end: this.backlog,
      consumers_fell_behind: behind,
      left_in_queues: this.left,
      stopped_by: this.io.stop.aborted ? String(this.io.stop.reason) : null,
    };
  }
}

async function writable(flag: string, path: string): Promise<void> {
  try {
    await writeFile(path, "");
  } catch (err) {
    const code = (err as { code?: string }).code ?? String(err);
    throw new InputError(
      `${flag} file '${path}' cannot be written (${code}): name a file in a directory that exists`,
    );
  }
}
