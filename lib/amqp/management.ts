/**
 * RabbitMQ's management HTTP API, for what AMQP cannot list (exchanges, queues, bindings). Its
 * address comes from the AMQP URL (amqp → http on 15672, amqps → https on 15671, same host, user,
 * password and vhost) unless --api-url says otherwise; TLS trusts --cacert and presents --cert.
 */
import type { AMQPTlsOptions } from "@cloudamqp/amqp-client";
import { Buffer } from "node:buffer";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { brokerCredentials, type BrokerOptions, parseBrokerUrls } from "./connection.ts";
import { ExitCode, KmqError, redactUrl, UsageError } from "../term/errors.ts";
import { JsonArrayReader } from "./json-array-reader.ts";

/** How long the API may stay silent before it counts as unreachable. */
const TIMEOUT_MS = 10_000;
/** How long one whole answer may take, however it trickles in. */
const ANSWER_MS = 20_000;
/** The largest answer read: a broker's topology listed with only the columns kmq shows is far smaller. */
const MAX_ANSWER = 256 * 1024 * 1024;
const ENABLE_HINT =
  "enable it with 'rabbitmq-plugins enable rabbitmq_management', or give its address with --api-url";

export interface ManagementApi {
  /** http(s)://host:port/api/ */
  base: URL;
  vhost: string;
  user: string;
  password: string;
  tls: AMQPTlsOptions;
  /** The base as it can be shown (no password). */
  display: string;
}

/** Where the API is and how to log in to it, from the broker options and --api-url. */
export async function managementApi(broker: BrokerOptions, apiUrl = broker.apiUrl): Promise<ManagementApi> {
  const [first] = parseBrokerUrls(broker.url, "kmq info");
  const amqp = new URL(first!.href);
  const tls = amqp.protocol === "amqps:";
  const creds = await brokerCredentials(broker, tls || apiUrl?.startsWith("https:") === true);
  const vhost = decodeURIComponent(amqp.pathname.slice(1)) || "/";
  let base: URL;
  if (apiUrl === undefined) {
    base = new URL(
      `${tls ? "https" : "http"}://${amqp.host.replace(/:\d+$/, "")}:${tls ? 15671 : 15672}/api/`,
    );
  } else {
    try {
      base = new URL(apiUrl);
    } catch {
      throw new UsageError(
        "invalid --api-url (not shown: it may hold a password): expected http(s)://host:15672/",
      );
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new UsageError(`--api-url '${redactUrl(apiUrl)}' is not http:// or https://`);
    }
    if (!base.pathname.endsWith("/")) base.pathname += "/";
    if (!base.pathname.endsWith("/api/")) base.pathname += "api/";
  }
  const user = decodeURIComponent(base.username || amqp.username || "guest");
  const password = base.password
    ? decodeURIComponent(base.password)
    : creds.password ?? (decodeURIComponent(amqp.password) || "guest");
  base.username = base.password = "";
  return { base, vhost, user, password, tls: creds.tlsOptions ?? {}, display: base.href };
}

/**
 * GETs `path` (under /api/) and parses its JSON (with `parse`: JSON.parse, or an exact reader);
 * every failure is a KmqError naming the fix.
 */
export function getJson(
  api: ManagementApi,
  path: string,
  timeoutMs = TIMEOUT_MS,
  parse: (text: string) => unknown = JSON.parse,
): Promise<unknown> {
  const chunks: Uint8Array[] = [];
  return getAnswer(api, path, timeoutMs, {
    push: (chunk) => chunks.push(chunk),
    end: () => {
      // the pieces go as soon as they are one buffer, the buffer as soon as it is text
      const answer = Buffer.concat(chunks);
      chunks.length = 0;
      return parse(answer.toString("utf8"));
    },
  });
}

/**
 * GETs `path` (under /api/), a JSON array, handing each element to `onElement` as it arrives: a
 * list of 200,000 queues is never held as text, only as what `onElement` keeps of it. What
 * `onElement` throws ends the request and is the answer's failure.
 */
export async function getJsonArray(
  api: ManagementApi,
  path: string,
  onElement: (element: unknown) => void,
  timeoutMs = TIMEOUT_MS,
): Promise<void> {
  const reader = new JsonArrayReader(onElement);
  await getAnswer(api, path, timeoutMs, reader);
}

/** How a 200 answer's body is read: each chunk as it comes, then its value at the end. */
interface AnswerReader {
  push(chunk: Uint8Array): void;
  end(): unknown;
}

/** A SyntaxError is an answer that is not JSON; anything else the reader threw is its own. */
function readFailure(api: ManagementApi, err: unknown): unknown {
  return err instanceof SyntaxError
    ? unreachable(api, "the answer is not JSON, so this is not RabbitMQ's management API")
    : err;
}

function getAnswer(
  api: ManagementApi,
  path: string,
  timeoutMs: number,
  reader: AnswerReader,
): Promise<unknown> {
  const url = new URL(path, api.base);
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  const auth = Buffer.from(`${api.user}:${api.password}`).toString("base64");
  return new Promise((resolve, reject) => {
    let failed = false;
    const fail = (err: unknown) => {
      failed = true;
      reject(err);
      req.destroy();
    };
    const req = request(url, {
      method: "GET",
      headers: { authorization: `Basic ${auth}`, accept: "application/json" },
      timeout: timeoutMs,
      ...api.tls,
    }, (res) => {
      const status = res.statusCode ?? 0;
      let size = 0;
      let refusal = "";
      res.on("data", (c: Uint8Array) => {
        size += c.length;
        if (failed) return;
        if (size > MAX_ANSWER) {
          return fail(unreachable(api, `its answer is larger than ${MAX_ANSWER / 1024 / 1024} MiB`));
        }
        if (status !== 200) {
          if (refusal.length < 65536) refusal += Buffer.from(c).toString("utf8");
          return;
        }
        try {
          reader.push(c);
        } catch (err) {
          fail(readFailure(api, err));
        }
      });
      res.on("error", (err) => reject(unreachable(api, err.message)));
      res.on("end", () => {
        if (failed) return;
        if (status === 200) {
          try {
            return resolve(reader.end());
          } catch (err) {
            return reject(readFailure(api, err));
          }
        }
        reject(refused(api, status, refusal));
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    const whole = setTimeout(
      () => req.destroy(new Error(`the answer did not finish within ${ANSWER_MS / 1000} s`)),
      Math.max(timeoutMs, ANSWER_MS),
    );
    req.on("close", () => clearTimeout(whole));
    req.on("error", (err: Error & { code?: string }) => {
      const why = err.code === "ECONNREFUSED" ? "connection refused" : err.message;
      reject(unreachable(api, why));
    });
    req.end();
  });
}

/** The failure an answer other than 200 OK stands for. */
function refused(api: ManagementApi, status: number, text: string): KmqError {
  if (status === 401) {
    return new KmqError(
      ExitCode.accessRefused,
      `the management API at ${api.display} refused user '${api.user}': check the password, and that the ` +
        "user has the 'management' or 'monitoring' tag (rabbitmqctl set_user_tags)",
    );
  }
  // RabbitMQ's 404 for an unknown vhost is JSON; any other server's is not the management API
  if (status === 404 && /"Object Not Found"/.test(text)) {
    return new KmqError(
      ExitCode.brokerRefused,
      `the management API knows no virtual host '${api.vhost}': check the vhost in the URL`,
    );
  }
  return unreachable(api, `HTTP ${status}`);
}

/** PUTs a JSON body to `path` (under /api/); resolves on 2xx, else a KmqError with the API's reason. */
export function putJson(api: ManagementApi, path: string, body: string): Promise<void> {
  const url = new URL(path, api.base);
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  const auth = Buffer.from(`${api.user}:${api.password}`).toString("base64");
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: "PUT",
      headers: { authorization: `Basic ${auth}`, "content-type": "application/json" },
      timeout: TIMEOUT_MS,
      ...api.tls,
    }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => text.length < 4096 && (text += c));
      res.on("error", (err) => reject(unreachable(api, err.message)));
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve();
        const reason = /"reason":"((?:[^"\\]|\\.)*)"/.exec(text)?.[1] ?? `HTTP ${status}`;
        reject(
          new KmqError(
            status === 401 ? ExitCode.accessRefused : ExitCode.brokerRefused,
            `the management API at ${api.display} refused ${path.replace(/\/.*$/, "")}: ${
              reason.slice(0, 300)
            }`,
          ),
        );
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    req.on(
      "error",
      (err: Error & { code?: string }) =>
        reject(unreachable(api, err.code === "ECONNREFUSED" ? "connection refused" : err.message)),
    );
    req.end(body);
  });
}

function unreachable(api: ManagementApi, why: string): KmqError {
  return new KmqError(
    ExitCode.unreachable,
    `the management API at ${api.display} is not reachable (${why}): ${ENABLE_HINT}`,
  );
}
