/**
 * `kmq celery send TASK [ARG...]`: a Celery task message (protocol 2, as Celery 5 sends it) built
 * from the command line and published with produce's guarantees; prints the task id.
 */
import { hostname } from "node:os";
import { InputError } from "../term/errors.ts";
import {
  ExactJsonError,
  type ExactValue,
  JsonRangeError,
  parseExact,
  pyRepr,
  toJson,
} from "../messages/exact-json.ts";
import type { FieldTable } from "../messages/fields.ts";
import { cmdProduce, type ProduceIo } from "./produce.ts";
import { Command } from "@commander-js/extra-typings";
import { ExactObject } from "../messages/exact-json.ts";
import { UsageError } from "../term/errors.ts";
import { messageCommand, messageOptionsFrom, type ProduceOptions } from "./message-options.ts";
import { type Done, type GlobalOptions, globalsOf, seconds, shortString } from "./options.ts";

const tupleRepr = (args: ExactValue[]) =>
  args.length === 1 ? `(${pyRepr(args[0]!)},)` : `(${args.map(pyRepr).join(", ")})`;

/**
 * An argument as JSON when it reads as JSON (`2`, `true`, `[1]`), else as the string it is;
 * numbers go to the worker exactly as written. A number no double holds (`1e400`) is bad input.
 */
export function taskArgument(text: string, position: number): ExactValue {
  try {
    return parseExact(text);
  } catch (err) {
    if (err instanceof JsonRangeError) throw new InputError(`argument ${position}: ${err.message}`);
    if (err instanceof ExactJsonError) return text;
    throw err;
  }
}

/** The headers, body and properties Celery 5's `apply_async` would send for this call. */
export function taskMessage(o: CelerySendOptions, id: string, now = new Date()) {
  const seconds = (s: number) => new Date(now.getTime() + s * 1000).toISOString();
  const eta = o.eta ?? (o.countdown === undefined ? null : seconds(o.countdown));
  const headers: FieldTable = {
    lang: "py",
    task: o.task,
    id,
    shadow: null,
    eta,
    expires: o.expires === undefined ? null : seconds(o.expires),
    group: null,
    group_index: null,
    retries: 0,
    timelimit: [null, null],
    root_id: id,
    parent_id: null,
    argsrepr: tupleRepr(o.args),
    kwargsrepr: pyRepr(o.kwargs),
    origin: `kmq@${hostname()}`,
    ignore_result: false,
  };
  const embed = `{"callbacks": null, "errbacks": null, "chain": null, "chord": null}`;
  return { headers, body: `[${toJson(o.args)}, ${toJson(o.kwargs)}, ${embed}]` };
}

export async function cmdCelerySend(o: CelerySendOptions, io: ProduceIo & { stdout: NodeJS.WritableStream }) {
  const id = o.id ?? crypto.randomUUID(); // the web API: node:crypto costs start-up time
  const { headers, body } = taskMessage(o, id);
  const produce: ProduceOptions = {
    ...o.produce,
    messages: [body],
    json: true,
    contentType: "application/json",
    contentEncoding: "utf-8",
    correlationId: id,
    headers,
  };
  await cmdProduce(produce, io);
  io.stdout.write(id + "\n");
}

export interface CelerySendOptions extends GlobalOptions {
  task: string;
  /** JSON read exactly (numbers as written), or strings. */
  args: ExactValue[];
  kwargs: ExactObject;
  /** Seconds from now: the ETA. */
  countdown?: number;
  /** ISO 8601 ETA. */
  eta?: string;
  /** Seconds from now after which the worker discards the task. */
  expires?: number;
  id?: string;
  /** How the message goes out: produce's options, to the queue through the default exchange. */
  produce: ProduceOptions;
}

/** `kmq celery send`: its options, checks, help and examples. */
export function defineCelery(program: Command, done: Done): void {
  const celery = program.command("celery").description("Celery tasks from the shell");
  celery.command("send")
    .description("send a Celery task (protocol 2, as Celery 5 sends it) and print its id")
    .argument("<task>", "the task's name, e.g. tasks.add")
    .argument("[args...]", "positional arguments: JSON where they read as JSON (2, true, [1]), else strings")
    .option(
      "-q, --queue <name>",
      "the worker's queue (declared durable when missing)",
      shortString("--queue"),
      "celery",
    )
    .option("--kwargs <json>", "keyword arguments, a JSON object", "{}")
    .option("--countdown <seconds>", "run no sooner than this many seconds from now", seconds("--countdown"))
    .option("--eta <iso-time>", "run no sooner than this time (ISO 8601)")
    .option(
      "--expires <seconds>",
      "discard the task if not run within this many seconds",
      seconds("--expires"),
    )
    .option("--id <id>", "the task id (default: a new UUID)", shortString("--id"))
    .option("--no-declare", "declare nothing: the queue must exist")
    .option(
      "--retry-timeout <seconds>",
      "keep reconnecting this long when the connection drops",
      seconds("--retry-timeout"),
      60,
    )
    .addHelpText(
      "after",
      `
Examples:
  kmq celery send tasks.add 2 3
  kmq celery send tasks.greet Ada --kwargs '{"greeting": "Hi"}' -q default --countdown 10`,
    )
    .action((task, args, o, cmd) => {
      const options = celerySendOptionsFrom(task, args, o, globalsOf(cmd));
      done({
        kind: "run",
        verbose: options.verbose,
        run: async (io) =>
          cmdCelerySend(options, {
            stdin: io.stdin,
            stderr: await io.stderr(),
            stdout: io.stdout(),
            log: io.log,
            verbose: options.verbose,
            stop: io.stop(),
          }),
      });
    });
}

/** What `celery send` parsed, checked (exit 2 or 3 naming the problem) and mapped to its options. */
function celerySendOptionsFrom(
  task: string,
  args: string[],
  o: {
    queue: string;
    kwargs: string;
    countdown?: number;
    eta?: string;
    expires?: number;
    id?: string;
    declare: boolean;
    retryTimeout: number;
  },
  g: GlobalOptions,
): CelerySendOptions {
  let kwargs: ExactValue;
  try {
    kwargs = parseExact(o.kwargs);
  } catch (err) {
    if (err instanceof JsonRangeError) throw new InputError(`--kwargs: ${err.message}`);
    throw new UsageError(`--kwargs '${o.kwargs}' is not JSON: give an object, e.g. '{"x": 1}'`);
  }
  if (!(kwargs instanceof ExactObject)) {
    throw new UsageError("--kwargs must be a JSON object, e.g. '{\"x\": 1}'");
  }
  // deno-lint-ignore no-control-regex -- control characters are what is refused
  if (!/^[^\s\x00-\x1f\x7f-\x9f]+$/.test(task) || task.startsWith(".") || task.endsWith(".")) {
    throw new UsageError(
      `task name '${task}' is not one a worker can run: give its registered name, e.g. tasks.add ` +
        "(no spaces or control characters, not empty)",
    );
  }
  if (o.eta !== undefined && Number.isNaN(Date.parse(o.eta))) {
    throw new UsageError(`--eta '${o.eta}' is not an ISO 8601 time, e.g. 2026-12-01T09:00:00Z`);
  }
  const produce = produceOptionsFor(o.queue);
  const options: CelerySendOptions = {
    ...g,
    task,
    args: args.map((a, i) => taskArgument(a, i + 1)),
    kwargs,
    countdown: o.countdown,
    eta: o.eta,
    expires: o.expires,
    id: o.id,
    produce: {
      ...produce,
      broker: g.broker,
      verbose: g.verbose,
      retryTimeout: o.retryTimeout,
      topology: { ...produce.topology, declare: o.declare },
      quiet: true,
    },
  };
  return options;
}

/** produce's options (its defaults) for one message to `queue` through the default exchange. */
function produceOptionsFor(queue: string): ProduceOptions {
  const produce = messageCommand(new Command(), "produce", "").exitOverride();
  produce.parse(["-e", "", "-r", queue, "-q", queue, "x"], { from: "user" });
  return messageOptionsFrom(produce.args, produce.opts(), produce);
}
