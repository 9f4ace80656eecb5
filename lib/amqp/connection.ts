import { AMQPClient, type AMQPTlsOptions } from "@cloudamqp/amqp-client";
import { type FileHandle, open } from "node:fs/promises";
import { classifyError, ExitCode, InputError, KmqError, redactUrl, UsageError } from "../term/errors.ts";
import { installClientFixes } from "./client-fixes.ts";
import type { Log } from "../term/log.ts";

/** Where kmq connects when neither --url nor KMQ_URL says otherwise: Kombu's default broker. */
export const DEFAULT_URL = "amqp://guest:guest@localhost:5672/";
/** Seconds between heartbeats unless the URL's `heartbeat` parameter says otherwise. */
export const DEFAULT_HEARTBEAT = 30;
/** RabbitMQ's own default; the client's 8 KiB default would split bodies into many small frames. */
export const DEFAULT_FRAME_MAX = 131072;
/** The client's lower limit (AMQP's is 4096). */
const MIN_FRAME_MAX = 8192;
/** A broker that does not complete the handshake within this many seconds counts as unreachable. */
export const CONNECT_TIMEOUT_SECONDS = 10;

/** Where and how to connect: the URL plus what should stay out of it (and off the command line). */
export interface BrokerOptions {
  url: string;
  /** PEM file of the CA(s) to trust instead of the system's list (--cacert, KMQ_CACERT). */
  cacert?: string;
  /** PEM client certificate (--cert, KMQ_CERT); needs `key`. */
  cert?: string;
  /** PEM private key of the client certificate (--key, KMQ_KEY). */
  key?: string;
  /** Wins over the URL's password (KMQ_PASSWORD). */
  password?: string;
  /** A file whose first line is the password; wins over `password` and the URL (--password-file). */
  passwordFile?: string;
  /** The management API's address when it is not the AMQP host's :15672 (KMQ_API_URL, --api-url). */
  apiUrl?: string;
}

/** The options every command takes: where the broker is and how loud to be. */
export interface GlobalOptions {
  broker: BrokerOptions;
  verbose: boolean;
}

export interface ConnectOptions {
  broker: BrokerOptions;
  /** Shown in the management UI, e.g. `kmq produce`. */
  name: string;
  log: Log;
}

export interface BrokerUrl {
  /** The URL handed to the client, with heartbeat, frameMax and name filled in. */
  href: string;
  /** The URL as the user gave it, password replaced by `***`: safe to print. */
  display: string;
  password: string;
}

const PERCENT_HINT = "percent-encode special characters in the user name and password " +
  "(/ as %2F, ? as %3F, # as %23, % as %25, the at sign as %40) or put the password in KMQ_PASSWORD";

/**
 * The broker addresses of a `--url`/`KMQ_URL` text: several are separated by commas, spaces or
 * Kombu's `;`, each separator followed by a URL scheme — so a raw `,` or `;` in a password never
 * splits it. Each element is parsed on its own: no part of one becomes another's vhost.
 */
export function splitUrls(text: string): string[] {
  return text.trim().split(/[\s,;]+(?=[a-z][a-z0-9+.-]*:\/\/)/i).map((u) => u.replace(/[\s,;]+$/, ""));
}

/** Each address of a list checked; a bad one is a usage error naming its position. */
export function parseBrokerUrls(text: string, name: string): BrokerUrl[] {
  const urls = splitUrls(text);
  return urls.map((url, i) => {
    try {
      return parseBrokerUrl(url, name);
    } catch (err) {
      if (!(err instanceof UsageError) || urls.length === 1) throw err;
      throw new UsageError(`broker address ${i + 1} of ${urls.length}: ${err.message}`);
    }
  });
}

export const hasScheme = (url: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(url.trim());

/**
 * `what` has no amqp:// in front. Shown only when it is plainly host[:port][/vhost]: anything else
 * may hold a password.
 */
export function schemeMissing(what: string, url: string): UsageError {
  const plain = /^[\w.-]+(:\d+)?(\/[\w.%-]*)?$/.test(url);
  return plain
    ? new UsageError(`${what} '${url}' has no scheme: write amqp://${url} (or amqps://)`)
    : new UsageError(
      `${what} has no scheme (not shown: it may hold a password): write amqp://user:password@host:port/vhost`,
    );
}

/** Checks the URL and fills in kmq's connection defaults; a bad URL is a usage error. */
export function parseBrokerUrl(url: string, name: string): BrokerUrl {
  if (!hasScheme(url)) throw schemeMissing("the broker URL", url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // not echoed: where the password is in a string that is not a URL cannot be told
    throw new UsageError(
      "invalid broker URL (not shown: it may hold a password): expected amqp://user:password@host:port/vhost; " +
        PERCENT_HINT,
    );
  }
  // masked from the text, not from what the parser made of it: an unencoded '/' in the password
  // makes the parser read part of it as a port
  const display = redactUrl(url);
  if (/@/.test(u.pathname + u.search + u.hash)) {
    throw new UsageError(`the broker URL '${display}' has an at sign after its host: ${PERCENT_HINT}`);
  }
  let password: string;
  try {
    password = decodeURIComponent(u.password);
    decodeURIComponent(u.username);
    decodeURIComponent(u.pathname);
  } catch {
    throw new UsageError(`the broker URL '${display}' has a '%' that starts no %XX escape: ${PERCENT_HINT}`);
  }
  if (u.protocol !== "amqp:" && u.protocol !== "amqps:") {
    throw new UsageError(
      `unsupported URL scheme '${u.protocol}' in '${display}': use amqp:// or amqps://`,
    );
  }
  if (!u.hostname) throw new UsageError(`no host in broker URL '${display}'`);
  for (const key of ["heartbeat", "frameMax", "channelMax"]) {
    const value = u.searchParams.get(key);
    if (value !== null && !/^\d+$/.test(value)) {
      throw new UsageError(`invalid ${key} '${value}' in broker URL: expected a whole number`);
    }
  }
  const frameMax = u.searchParams.get("frameMax");
  if (frameMax !== null && Number(frameMax) !== 0 && Number(frameMax) < MIN_FRAME_MAX) {
    throw new UsageError(`frameMax ${frameMax} in broker URL is too small: use ${MIN_FRAME_MAX} or more`);
  }
  if (!u.searchParams.has("heartbeat")) u.searchParams.set("heartbeat", String(DEFAULT_HEARTBEAT));
  if (!u.searchParams.has("frameMax")) u.searchParams.set("frameMax", String(DEFAULT_FRAME_MAX));
  if (!u.searchParams.has("name")) u.searchParams.set("name", name);
  return { href: u.toString(), display, password };
}

/** The URL with a password given apart from it (KMQ_PASSWORD, --password-file) in place of its own. */
function withPassword(url: BrokerUrl, password: string): BrokerUrl {
  const u = new URL(url.href);
  if (!u.username) u.username = "guest";
  u.password = encodeURIComponent(password);
  return { ...url, href: u.href, password };
}

/** A password, certificate or key file is far smaller: a larger one (/dev/zero) is refused. */
const MAX_CREDENTIAL_FILE = 1 << 20;

async function readCredentialFile(path: string, option: string): Promise<string> {
  let file: FileHandle | undefined;
  try {
    file = await open(path, "r");
    const buf = new Uint8Array(MAX_CREDENTIAL_FILE + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await file.read(buf, length, buf.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_CREDENTIAL_FILE) {
        throw new InputError(
          `${option} file '${path}' is larger than ${MAX_CREDENTIAL_FILE} bytes: is it the right file?`,
        );
      }
    }
    return new TextDecoder().decode(buf.subarray(0, length));
  } catch (err) {
    if (err instanceof InputError) throw err;
    const code = (err as { code?: string }).code;
    const why = code === "ENOENT"
      ? "does not exist"
      : code === "EACCES"
      ? "is not readable"
      : code === "EISDIR"
      ? "is a directory"
      : (err as Error).message;
    throw new InputError(`${option} file '${path}' ${why}: check the path given to ${option}`);
  } finally {
    await file?.close().catch(() => {});
  }
}

/**
 * The password and TLS material of `broker`, read from their files — on every connect, so a
 * reconnect picks up a rotated secret (a mounted password file or certificate).
 */
export async function brokerCredentials(broker: BrokerOptions, tls: boolean): Promise<{
  password?: string;
  tlsOptions?: AMQPTlsOptions;
}> {
  const password = broker.passwordFile !== undefined
    ? (await readCredentialFile(broker.passwordFile, "--password-file")).split(/\r?\n/)[0] ?? ""
    : broker.password;
  const given = (["cacert", "cert", "key"] as const).filter((k) => broker[k] !== undefined);
  if (given.length === 0) return { password };
  if (!tls) {
    throw new UsageError(`--${given[0]} needs an amqps:// URL: TLS options do nothing on amqp://`);
  }
  if ((broker.cert === undefined) !== (broker.key === undefined)) {
    throw new UsageError("--cert and --key go together: give both, or neither");
  }
  const tlsOptions: AMQPTlsOptions = {};
  if (broker.cacert !== undefined) tlsOptions.ca = await readCredentialFile(broker.cacert, "--cacert");
  if (broker.cert !== undefined) tlsOptions.cert = await readCredentialFile(broker.cert, "--cert");
  if (broker.key !== undefined) tlsOptions.key = await readCredentialFile(broker.key, "--key");
  return { password, tlsOptions };
}

/**
 * Where a broker list stands: the address in use, where the next connect starts (the one after
 * the address last used: a lost node is tried last), and how often kmq moved to another node.
 */
interface Failover {
  current?: number;
  next: number;
  failovers: number;
}
const failoverState = new WeakMap<BrokerOptions, Failover>();

/** How many times connections to `broker` moved to another address of its list. */
export function failovers(broker: BrokerOptions): number {
  return failoverState.get(broker)?.failovers ?? 0;
}

/**
 * Opens a connection to the first address of the list that accepts one, starting after the
 * address used last (so a reconnect after a lost node moves on to the next node), each failing
 * with exit 4 within {@link CONNECT_TIMEOUT_SECONDS} when nothing answers. A refused login or
 * vhost ends the search: the nodes of one cluster share their users.
 */
export async function connect(options: ConnectOptions): Promise<AMQPClient> {
  const urls = parseBrokerUrls(options.broker.url, options.name); // usage errors before any file is read
  const state = failoverState.get(options.broker) ?? { next: 0, failovers: 0 };
  failoverState.set(options.broker, state);
  let lastError: unknown;
  for (let tried = 0; tried < urls.length; tried++) {
    const i = (state.next + tried) % urls.length;
    try {
      const client = await connectTo(urls[i]!, options);
      if (state.current !== undefined && state.current !== i) {
        state.failovers++;
        options.log.warn(`failed over to ${urls[i]!.display} (address ${i + 1} of ${urls.length})`);
      }
      state.current = i;
      state.next = (i + 1) % urls.length;
      return client;
    } catch (err) {
      lastError = err;
      if (!(err instanceof KmqError) || err.exitCode !== ExitCode.unreachable) throw err;
      if (urls.length > 1) options.log.info(`${(err as Error).message}; trying the next address`);
    }
  }
  state.next = (state.next + 1) % urls.length;
  throw lastError;
}

async function connectTo(parsed: BrokerUrl, options: ConnectOptions): Promise<AMQPClient> {
  const { password, tlsOptions } = await brokerCredentials(options.broker, parsed.href.startsWith("amqps:"));
  const url = password === undefined ? parsed : withPassword(parsed, password);
  if (new URL(url.href).searchParams.has("insecure")) {
    options.log.warn("TLS certificate verification is OFF (insecure in the URL): do not use in production");
  }
  installClientFixes();
  const client = new AMQPClient(url.href, tlsOptions);
  options.log.info(`connecting to ${url.display}`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      client.socket?.destroy();
      reject(
        new KmqError(
          ExitCode.unreachable,
          `connecting to ${url.display}: no answer within ${CONNECT_TIMEOUT_SECONDS} s; check the host and port`,
        ),
      );
    }, CONNECT_TIMEOUT_SECONDS * 1000);
  });
  try {
    await Promise.race([client.connect(), timeout]);
  } catch (err) {
    client.socket?.destroy();
    throw classifyError(err, `connecting to ${url.display}`, url.password);
  } finally {
    clearTimeout(timer);
  }
  options.log.info(
    `connected to ${url.display} (heartbeat ${client.heartbeat} s, frame max ${client.frameMax} bytes)`,
  );
  watchHeartbeats(client);
  return client;
}

/**
 * Drops a connection the broker has not sent anything on for two heartbeat intervals. The client
 * only notices a socket idle both ways, so a dead route under a steady stream of publishes (writes
 * keep it "active") would never be noticed.
 */
function watchHeartbeats(client: AMQPClient): void {
  const socket = client.socket;
  if (!socket || client.heartbeat === 0) return;
  const limitMs = 2 * client.heartbeat * 1000;
  let lastRead = Date.now();
  socket.on("data", () => (lastRead = Date.now()));
  const timer = setInterval(() => {
    const silent = Date.now() - lastRead;
    if (silent > limitMs) {
      socket.destroy(
        new Error(`Heartbeat timeout: nothing from the broker for ${Math.round(silent / 1000)} s`),
      );
    }
  }, Math.max(250, client.heartbeat * 250));
  (timer as unknown as { unref?: () => void }).unref?.();
  socket.once("close", () => clearInterval(timer));
}

/** Closes the connection politely; a connection that is already gone is not an error here. */
export async function closeQuietly(client: AMQPClient): Promise<void> {
  if (client.closed) {
    client.socket?.destroy();
    return;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    // a broker that went silent must not keep kmq from exiting
    await Promise.race([client.close(), new Promise((r) => (timer = setTimeout(r, 2000)))]);
  } catch {
    // already closed by the broker: nothing left to release but the socket
  } finally {
    clearTimeout(timer);
    client.socket?.destroy();
  }
}
