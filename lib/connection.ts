import { AMQPClient } from "@cloudamqp/amqp-client";
import { classifyError, ExitCode, KmqError, redactUrl, UsageError } from "./errors.ts";
import { installTypedFieldDecoding } from "./field-decoding.ts";
import type { Log } from "./log.ts";

/** Where kmq connects when neither --url nor KMQ_URL says otherwise: Kombu's default broker. */
export const DEFAULT_URL = "amqp://guest:guest@localhost:5672/";
/** Seconds between heartbeats unless the URL's `heartbeat` parameter says otherwise. */
export const DEFAULT_HEARTBEAT = 30;
/** RabbitMQ's own default; the client's 8 KiB default would split bodies into many small frames. */
export const DEFAULT_FRAME_MAX = 131072;
/** A broker that does not complete the handshake within this many seconds counts as unreachable. */
export const CONNECT_TIMEOUT_SECONDS = 10;

export interface ConnectOptions {
  url: string;
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

/** Checks the URL and fills in kmq's connection defaults; a bad URL is a usage error. */
export function parseBrokerUrl(url: string, name: string): BrokerUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(
      `invalid broker URL '${redactUrl(url)}': expected amqp://user:password@host:port/vhost`,
    );
  }
  const display = redactUrl(url);
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
  if (!u.searchParams.has("heartbeat")) u.searchParams.set("heartbeat", String(DEFAULT_HEARTBEAT));
  if (!u.searchParams.has("frameMax")) u.searchParams.set("frameMax", String(DEFAULT_FRAME_MAX));
  if (!u.searchParams.has("name")) u.searchParams.set("name", name);
  return { href: u.toString(), display, password: decodeURIComponent(u.password) };
}

/** Opens a connection, failing with exit 4 within {@link CONNECT_TIMEOUT_SECONDS} when nothing answers. */
export async function connect(options: ConnectOptions): Promise<AMQPClient> {
  const url = parseBrokerUrl(options.url, options.name);
  if (new URL(url.href).searchParams.has("insecure")) {
    options.log.warn("TLS certificate verification is OFF (insecure in the URL): do not use in production");
  }
  installTypedFieldDecoding();
  const client = new AMQPClient(url.href);
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
  options.log.info(`connected (heartbeat ${client.heartbeat} s, frame max ${client.frameMax} bytes)`);
  return client;
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
