/**
 * `kmq bench`: producers and consumers against the broker, each on a connection of its own, with
 * end-to-end and confirm latencies in HDR histograms (every message counted, no sampling). The run
 * itself lives in lib/bench/.
 */
import { type Command, InvalidArgumentError, Option, type OptionValues } from "@commander-js/extra-typings";
import { readFile } from "node:fs/promises";
import type { BenchOptions } from "../bench/bench-options.ts";
import { STAMP_BYTES } from "../bench/bench-options.ts";
import { runBench } from "../bench/run-bench.ts";
import { InputError, UsageError } from "../term/errors.ts";
import { type Done, globalsOf, integer, shortString } from "./options.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A time such as `30s`, `500ms`, `2m` or `1h`; a bare number is in `bareUnit`. Milliseconds. */
export function duration(name: string, bareUnit: "s" | "ms") {
  return (value: string): number => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
    const ms = m ? Number(m[1]) * UNITS[m[2] ?? bareUnit]! : NaN;
    if (!Number.isFinite(ms) || ms <= 0 && bareUnit === "s") {
      throw new InvalidArgumentError(`${name} must be a time such as 30s, 500ms, 2m or 1h`);
    }
    return ms;
  };
}

function rate(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n < 0) {
      throw new InvalidArgumentError(`${name} must be a number of messages per second (0: no limit)`);
    }
    return n;
  };
}

const MAX = Number.MAX_SAFE_INTEGER;

/** The counts of producers and consumers, and what the producers send, how fast, for how long. */
// deno-lint-ignore no-explicit-any
function publishing<A extends any[], O extends OptionValues, G extends OptionValues>(cmd: Command<A, O, G>) {
  return cmd
    .option(
      "--producers <n>",
      "producers, each on its own connection (0: drain only)",
      integer("--producers", 0, 1000),
      1,
    )
    .option(
      "--consumers <n>",
      "consumers, each on its own connection (0: publish only)",
      integer("--consumers", 0, 1000),
      1,
    )
    .option(
      "--size <bytes>",
      `body size (at least ${STAMP_BYTES}: the send time travels in it)`,
      integer("--size", STAMP_BYTES, 128 * 1024 * 1024),
      12,
    )
    .option("--body-file <file>", "send this file's bytes as every body (the send time goes in a header)")
    .option("--rate <msgs/s>", "per producer; 0: as fast as the broker takes them", rate("--rate"), 0)
    .option(
      "--duration <time>",
      "publish for this long: 30s, 2m, … (default 10s unless --count)",
      duration("--duration", "s"),
    )
    .option(
      "-n, --count <n>",
      "messages per producer (no producers: messages to receive)",
      integer("--count", 1, MAX),
    )
    .option(
      "--confirm <window>",
      "unconfirmed messages in flight per producer; 0: no confirms",
      integer("--confirm", 0, 1_000_000),
      1000,
    )
    .option("--persistent", "publish persistent messages (delivery mode 2)", false);
}

/** How the consumers take and acknowledge, the queues, and where the report goes. */
// deno-lint-ignore no-explicit-any
function consuming<A extends any[], O extends OptionValues, G extends OptionValues>(cmd: Command<A, O, G>) {
  return cmd
    .option("--prefetch <n>", "unacked messages per consumer", integer("--prefetch", 1, 65535), 1000)
    .option("--multi-ack <n>", "ack every n messages at once (1: each)", integer("--multi-ack", 1, 65535), 1)
    .option(
      "--consumer-rate <msgs/s>",
      "each consumer handles at most this many per second",
      rate("--consumer-rate"),
      0,
    )
    .option(
      "--consumer-latency <time>",
      "pretend work per message: 50ms, 1s, … (bare: ms)",
      duration("--consumer-latency", "ms"),
      0,
    )
    .addOption(
      new Option("--queue-type <type>", "type of the bench's queues").choices(
        ["classic", "quorum", "stream"] as const,
      ).default("classic" as const),
    )
    .option(
      "--queues <n>",
      "queues, producers and consumers spread over them in turn",
      integer("--queues", 1, 1000),
      1,
    )
    .option(
      "--predeclared <queue>",
      "bench this existing queue (neither declared nor deleted)",
      shortString("--predeclared"),
    )
    .addOption(
      new Option("-o, --format <format>", "the report: text or json").choices(["text", "json"] as const)
        .default(
          "text" as const,
        ),
    )
    .option("--hgrm <file>", "write the end-to-end latency histogram here (.hgrm, milliseconds)")
    .option("--confirm-hgrm <file>", "write the confirm latency histogram here (.hgrm, milliseconds)");
}

/** bench's options: the producers', then the consumers' and the report's. */
function benchCommand(program: Command) {
  return consuming(publishing(
    program.command("bench")
      .description("measure the broker: producers and consumers, rates and exact latency percentiles"),
  ));
}

/** What commander parsed for bench, as the option definitions type it. */
type Parsed = ReturnType<ReturnType<typeof benchCommand>["opts"]>;

export function defineBench(program: Command, done: Done): void {
  benchCommand(program)
    .addHelpText(
      "after",
      `
The bench declares its queues under a unique prefix (kmq-bench-…) and deletes them at the end,
also after Ctrl-C. Latency is publish → received, from when each message was due at --rate (so a
stall is not hidden: no coordinated omission), and publish → confirm; every message is counted in
an HDR histogram. The report goes to stdout, a live line to a terminal's stderr.

Examples:
  kmq bench --duration 30s                                   # one producer, one consumer
  kmq bench --rate 5000 --persistent --queue-type quorum -o json
  kmq bench --producers 0 --consumers 4 --predeclared orders # how fast can orders be drained?
  kmq bench --consumers 0 --confirm 0 --count 1000000        # publish only, no confirms`,
    )
    .action((o, cmd) => {
      done({
        kind: "run",
        verbose: globalsOf(cmd).verbose,
        run: async (io) => {
          const options = await benchOptionsFrom(o, cmd);
          await runBench(options, {
            stdout: io.stdout(),
            stderr: await io.stderr(),
            log: io.log,
            stop: io.stop(),
          });
        },
      });
    });
}

/** What bench parsed, checked (exit 2 naming the problem) and mapped to its options. */
async function benchOptionsFrom(
  o: Parsed,
  cmd: { getOptionValueSource(key: string): string | undefined; optsWithGlobals(): OptionValues },
): Promise<BenchOptions> {
  if (o.producers === 0 && o.consumers === 0) {
    throw new UsageError(
      "--producers 0 and --consumers 0 leave nothing to measure: give one of them 1 or more",
    );
  }
  if (o.consumers > 0 && o.consumers < o.queues) {
    throw new UsageError(
      `--queues ${o.queues} with --consumers ${o.consumers}: a queue without a consumer only fills; ` +
        "give at least as many consumers as queues (or --consumers 0)",
    );
  }
  if (o.predeclared !== undefined && o.queues > 1) {
    throw new UsageError("--predeclared benches one existing queue: leave out --queues");
  }
  if (o.bodyFile !== undefined && cmd.getOptionValueSource("size") === "cli") {
    throw new UsageError("--size and --body-file both say what to send: give one of them");
  }
  if (o.producers === 0 && (o.rate > 0 || o.bodyFile !== undefined)) {
    throw new UsageError("--rate and --body-file are for producers: with --producers 0 nothing is sent");
  }
  const options: BenchOptions = {
    ...globalsOf(cmd),
    producers: o.producers,
    consumers: o.consumers,
    size: o.size,
    body: o.bodyFile === undefined ? undefined : await bodyFile(o.bodyFile),
    rate: o.rate,
    duration: o.duration !== undefined ? o.duration / 1000 : o.count === undefined ? 10 : undefined,
    count: o.count,
    confirm: o.confirm,
    persistent: o.persistent,
    prefetch: o.prefetch,
    multiAck: o.multiAck,
    consumerRate: o.consumerRate,
    consumerLatency: o.consumerLatency,
    queueType: o.queueType,
    queues: o.queues,
    predeclared: o.predeclared,
    json: o.format === "json",
    hgrm: o.hgrm,
    confirmHgrm: o.confirmHgrm,
  };
  return options;
}

async function bodyFile(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === "ENOENT"
      ? "does not exist"
      : code === "EISDIR"
      ? "is a directory"
      : `cannot be read (${code})`;
    throw new InputError(`--body-file '${path}' ${why}`);
  }
}
