/**
 * `kmq celery send TASK [ARG...]`: a Celery task message (protocol 2, as Celery 5 sends it) built
 * from the command line and published with produce's guarantees; prints the task id.
 */
import { hostname } from "node:os";
import type { CelerySendOptions, ProduceOptions } from "./registry.ts";
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
