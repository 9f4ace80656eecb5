/**
 * `kmq celery send TASK [ARG...]`: a Celery task message (protocol 2, as Celery 5 sends it) built
 * from the command line and published with produce's guarantees; prints the task id.
 */
import { hostname } from "node:os";
import type { CelerySendOptions, ProduceOptions } from "./cli.ts";
import type { FieldTable } from "./fields.ts";
import { cmdProduce, type ProduceIo } from "./produce.ts";

/** Python's repr of a JSON value, as Celery writes argsrepr and kwargsrepr for its tools. */
function pyRepr(v: unknown): string {
  if (v === null) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "string") return `'${v.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(", ")}]`;
  if (typeof v === "object") {
    return `{${Object.entries(v as object).map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(", ")}}`;
  }
  return String(v);
}

const tupleRepr = (args: unknown[]) =>
  args.length === 1 ? `(${pyRepr(args[0])},)` : `(${args.map(pyRepr).join(", ")})`;

/** An argument as JSON when it reads as JSON (`2`, `true`, `[1]`), else as the string it is. */
export function taskArgument(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
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
  const body = [o.args, o.kwargs, { callbacks: null, errbacks: null, chain: null, chord: null }];
  return { headers, body: JSON.stringify(body) };
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
