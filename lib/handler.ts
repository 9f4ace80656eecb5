/**
 * `kmq consume -- <command>`: one process per message, spawned directly (never through a shell,
 * so no message can inject a command), the body on its stdin and the metadata in its
 * environment. Its exit status decides what happens to the message.
 */
import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import process from "node:process";
import { type FieldTable, tableToJson } from "./fields.ts";
import { messageToRecord } from "./formats.ts";

/** EX_TEMPFAIL: "try again later" — the message goes back to the queue. */
export const EXIT_REQUEUE = 75;

export type Verdict =
  | { action: "ack"; stdout: Uint8Array }
  | { action: "requeue"; why: string }
  | { action: "reject"; why: string }
  /** The command could not be started at all: no message can succeed. */
  | { action: "fail"; why: string };

let inherited: Record<string, string> | undefined;

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
  const optional: [string, string | number | undefined][] = [
    ["KMQ_CONTENT_TYPE", p.contentType],
    ["KMQ_CONTENT_ENCODING", p.contentEncoding],
    ["KMQ_MESSAGE_ID", p.messageId],
    ["KMQ_CORRELATION_ID", p.correlationId],
    ["KMQ_REPLY_TO", p.replyTo],
    ["KMQ_TYPE", p.type],
    ["KMQ_APP_ID", p.appId],
    ["KMQ_PRIORITY", p.priority],
    ["KMQ_TIMESTAMP", p.timestamp ? Math.floor(p.timestamp.getTime() / 1000) : undefined],
  ];
  for (const [name, value] of optional) if (value !== undefined) env[name] = String(value);
  if (p.headers) env.KMQ_HEADERS = JSON.stringify(tableToJson(p.headers as FieldTable));
  return env;
}

/** Runs the command for one message; `timeoutSeconds` kills it (and requeues the message). */
export function runHandler(command: string[], msg: AMQPMessage, timeoutSeconds?: number): Promise<Verdict> {
  const [file, ...args] = command;
  return new Promise((resolve) => {
    const child = spawn(file!, args, {
      stdio: ["pipe", "pipe", "inherit"],
      env: { ...inheritedEnv(), ...handlerEnv(msg) },
    });
    const out: Buffer[] = [];
    let timedOut = false;
    const timer = timeoutSeconds === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutSeconds * 1000);
    child.stdout!.on("data", (b: Buffer) => out.push(b));
    // a command that does not read its stdin closes it early: that is its right
    child.stdin!.on("error", () => {});
    child.stdin!.end(msg.body ?? new Uint8Array(0));
    child.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = err.code === "ENOENT"
        ? `command '${file}' not found`
        : `cannot run '${file}': ${err.message}`;
      resolve({ action: "fail", why });
    });
    child.on("close", (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      if (timedOut) resolve({ action: "requeue", why: `killed after --exec-timeout ${timeoutSeconds} s` });
      else if (code === 0) resolve({ action: "ack", stdout: Buffer.concat(out) });
      else if (code === EXIT_REQUEUE) resolve({ action: "requeue", why: `exit status ${EXIT_REQUEUE}` });
      else resolve({ action: "reject", why: signal ? `killed by ${signal}` : `exit status ${code}` });
    });
  });
}
