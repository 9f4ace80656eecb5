/**
 * `kmq consume -- <command>`: one process per message, spawned directly (never through a shell,
 * so no message can inject a command), the body on its stdin and the metadata in its
 * environment. Its exit status decides what happens to the message.
 *
 * Each command runs in a process group of its own: a Ctrl-C in the terminal (SIGINT to kmq's
 * group) does not kill the commands in the middle of a message — kmq decides their fate — and
 * --exec-timeout kills the command's children too, not just the command.
 */
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { Buffer } from "node:buffer";
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { type FieldTable, tableToJson } from "../messages/fields.ts";
import { messageToRecord } from "../messages/formats.ts";
import { timestampOf } from "../messages/timestamp.ts";

/** EX_TEMPFAIL: "try again later" — the message goes back to the queue. */
export const EXIT_REQUEUE = 75;
/** A command's output is held (so it is written whole) up to this size; past it, it is streamed. */
export const HELD_OUTPUT_BYTES = 1024 * 1024;

export type Verdict =
  | { action: "ack"; stdout: Uint8Array }
  /** `output`: what the command wrote and kmq still holds (shown on stderr, never lost silently). */
  | { action: "requeue"; why: string; output?: Uint8Array }
  | { action: "reject"; why: string; output?: Uint8Array }
  /** The command could not be started at all: no message can succeed. */
  | { action: "fail"; why: string };

/** What kmq decides for a command it killed. */
type KillVerdict = Extract<Verdict, { action: "requeue" | "reject" }>;

/** Where a command's output goes when it is too big to hold: kmq's stdout, one command at a time. */
export interface OutputStream {
  /** Resolves once this command may write; the release function lets the next one in. */
  lock(): Promise<() => void>;
  write(bytes: Uint8Array): Promise<void>;
}

export interface HandlerOptions {
  /** Kill the command's group after this many seconds (the message is requeued). */
  timeoutSeconds?: number;
  /** Aborted when kmq is asked to stop: a command that then dies of a signal is requeued. */
  stop?: AbortSignal;
  /** Stream output past {@link HELD_OUTPUT_BYTES} here; without it (--reply) output is bounded. */
  stream?: OutputStream;
  /** With no stream: the most output a command may produce (a reply's max message size). */
  maxOutput: number;
}

let inherited: Record<string, string> | undefined;
/** Process groups of the commands running now, to kill if kmq must exit at once. */
const running = new Set<number>();

/** kmq's own environment, read once, without KMQ_* (a handler sees only its message's). */
function inheritedEnv(): Record<string, string> {
  inherited ??= Object.fromEntries(
    Object.entries(process.env).filter(([k, v]) => !k.startsWith("KMQ_") && v !== undefined),
  ) as Record<string, string>;
  return inherited;
}

/** The environment a handler sees; unset properties leave their variable unset. */
export function handlerEnv(msg: AMQPMessage): Record<string, string> {
  const p = msg.properties;
  const env: Record<string, string> = {
    KMQ_EXCHANGE: msg.exchange,
    KMQ_ROUTING_KEY: msg.routingKey,
    KMQ_REDELIVERED: msg.redelivered ? "true" : "false",
    KMQ_DELIVERY_TAG: String(msg.deliveryTag),
    KMQ_MESSAGE: JSON.stringify(messageToRecord(msg)),
  };
  const optional: [string, string | number | bigint | undefined][] = [
    ["KMQ_CONTENT_TYPE", p.contentType],
    ["KMQ_CONTENT_ENCODING", p.contentEncoding],
    ["KMQ_MESSAGE_ID", p.messageId],
    ["KMQ_CORRELATION_ID", p.correlationId],
    ["KMQ_REPLY_TO", p.replyTo],
    ["KMQ_TYPE", p.type],
    ["KMQ_APP_ID", p.appId],
    ["KMQ_PRIORITY", p.priority],
    ["KMQ_TIMESTAMP", timestampOf(p)],
  ];
  for (const [name, value] of optional) if (value !== undefined) env[name] = String(value);
  if (p.headers) env.KMQ_HEADERS = JSON.stringify(tableToJson(p.headers as FieldTable));
  return env;
}

/** Sends `signal` to a command's whole process group; one that is gone already is no error. */
function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group has exited
  }
}

/** Kills every running command's group now: kmq is about to exit without waiting for them. */
export function killRunningHandlers(): void {
  for (const pid of running) killGroup(pid, "SIGKILL");
}

/** Asks every running command's group to stop (SIGTERM); their messages will be requeued. */
export function terminateRunningHandlers(): void {
  for (const pid of running) killGroup(pid, "SIGTERM");
}

/** Runs the command for one message and says what should happen to it. */
export function runHandler(command: string[], msg: AMQPMessage, o: HandlerOptions): Promise<Verdict> {
  const [file, ...args] = command;
  return new Promise((resolve) => {
    const child = spawn(file!, args, {
      stdio: ["pipe", "pipe", "inherit"],
      env: { ...inheritedEnv(), ...handlerEnv(msg) },
      detached: true, // a process group of its own (see the module's comment)
    });
    const pid = child.pid;
    if (pid !== undefined) running.add(pid);
    let killed: KillVerdict | undefined;
    const kill = (verdict: KillVerdict) => {
      killed ??= verdict;
      killGroup(pid, "SIGKILL");
    };
    const timer = o.timeoutSeconds === undefined ? undefined : setTimeout(
      () => kill({ action: "requeue", why: `killed after --exec-timeout ${o.timeoutSeconds} s` }),
      o.timeoutSeconds * 1000,
    );
    const output = collectOutput(child, o, kill);
    // a command that does not read its stdin closes it early: that is its right
    child.stdin!.on("error", () => {});
    child.stdin!.end(msg.body ?? new Uint8Array(0));
    child.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (pid !== undefined) running.delete(pid);
      const why = err.code === "ENOENT"
        ? `command '${file}' not found`
        : `cannot run '${file}': ${err.message}`;
      resolve({ action: "fail", why });
    });
    child.on("close", async (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      if (pid !== undefined) running.delete(pid);
      const held = await output.finish();
      const unhandled = held.length > 0 ? held : undefined;
      if (killed) resolve({ ...killed, output: unhandled });
      else if (code === 0) resolve({ action: "ack", stdout: held });
      else if (code === EXIT_REQUEUE) {
        resolve({ action: "requeue", why: `exit status ${EXIT_REQUEUE}`, output: unhandled });
      } // once kmq is stopping, a signal is the stop reaching the command, not a verdict on the message
      else if (signal && o.stop?.aborted) {
        resolve({ action: "requeue", why: `stopped by ${signal}`, output: unhandled });
      } else {
        const why = signal ? `killed by ${signal}` : `exit status ${code}`;
        resolve({ action: "reject", why, output: unhandled });
      }
    });
  });
}

/**
 * Holds a command's output so concurrent commands never interleave; past
 * {@link HELD_OUTPUT_BYTES} it takes the output lock and streams the rest (the command waits on a
 * full pipe meanwhile), or — with no stream (--reply) — kills a command whose output passes
 * `maxOutput`. Memory stays bounded either way.
 */
function collectOutput(child: ChildProcess, o: HandlerOptions, kill: (verdict: KillVerdict) => void) {
  const stdout = child.stdout!;
  let held: Buffer[] = [];
  let size = 0;
  let release: (() => void) | undefined;
  let streaming: Promise<void> = Promise.resolve();
  const write = (bytes: Uint8Array) => {
    streaming = streaming.then(() => o.stream!.write(bytes)).catch((err) => {
      // not all of it reached stdout: the message is not handled
      kill({ action: "requeue", why: `its output could not be written (${(err as Error).message})` });
      stdout.resume(); // drain what is left, so the command can end
    });
  };
  stdout.on("data", (b: Buffer) => {
    if (release) {
      stdout.pause();
      write(b);
      streaming = streaming.then(() => void stdout.resume());
      return;
    }
    held.push(b);
    size += b.length;
    if (size <= HELD_OUTPUT_BYTES && !(o.stream === undefined && size > o.maxOutput)) return;
    if (!o.stream) {
      if (size > o.maxOutput) {
        held = [];
        kill({
          action: "reject",
          why: `its output passed ${o.maxOutput} bytes, more than one reply may carry`,
        });
      }
      return;
    }
    stdout.pause();
    streaming = o.stream.lock().then((r) => {
      release = r;
      const all = Buffer.concat(held);
      held = [];
      write(all);
      streaming = streaming.then(() => void stdout.resume());
    });
  });
  return {
    /** After the command ended: what is still held (streamed output is written by now). */
    finish: async (): Promise<Uint8Array> => {
      // each write may queue another: wait until the chain stops growing
      for (let last = streaming;; last = streaming) {
        await last;
        if (last === streaming) break;
      }
      release?.();
      return release ? new Uint8Array(0) : Buffer.concat(held);
    },
  };
}
