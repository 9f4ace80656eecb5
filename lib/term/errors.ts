/**
 * Every failure kmq reports maps to one exit code, so scripts can tell a typo from a broker that is
 * down. `main.ts` is the only place that turns a {@link KmqError} into a process exit.
 */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  badInput: 3,
  unreachable: 4,
  accessRefused: 5,
  brokerRefused: 6,
  notDelivered: 7,
  /** consume: a handler failed for some messages (rejected or requeued); the run itself finished. */
  notHandled: 8,
  /** consume: the broker cancelled the consumer (queue deleted, vhost gone). */
  cancelled: 9,
  /** Stopped by SIGINT before all input was sent; everything sent was confirmed (128 + 2). */
  interrupted: 130,
  /** The same for SIGTERM (128 + 15). */
  terminated: 143,
  /** consume: the reader of stdout went away (`| head`); unwritten messages went back (128 + 13). */
  readerGone: 141,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** An error whose message is fit for the user: one line, what failed and how to fix it. */
export class KmqError extends Error {
  constructor(readonly exitCode: ExitCodeValue, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KmqError";
  }
}

/** Unknown flag, bad option value, missing argument: exit 2. */
export class UsageError extends KmqError {
  constructor(message: string) {
    super(ExitCode.usage, message);
    this.name = "UsageError";
  }
}

/** The data to publish is not what was promised (invalid JSON, unreadable file, empty input): exit 3. */
export class InputError extends KmqError {
  constructor(message: string) {
    super(ExitCode.badInput, message);
    this.name = "InputError";
  }
}

/** Messages the broker did not take: nacked, returned, or unconfirmed when the connection closed. */
export class DeliveryError extends KmqError {
  constructor(message: string) {
    super(ExitCode.notDelivered, message);
    this.name = "DeliveryError";
  }
}

/** Control characters but tab, DEL and the C1 range: on stderr, a newline too (one line per report). */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNPRINTABLE = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;

/**
 * A report as it goes to stderr: its password masked and its control characters shown as `\xNN`,
 * so text from a message or a broker (a filter's result, a queue name) cannot drive the terminal.
 */
export function forStderr(text: string): string {
  return showControls(redactUrl(text));
}

/** Control characters (but tab) as `\xNN`: text from a message or a broker, made safe for a terminal. */
export function showControls(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/**
 * Replaces the password of any URL (amqp://, but also a mistyped http://) with `***`, wherever it
 * appears in a text. Everything from the first `:` after the user name up to the LAST `@` of the
 * text goes: a password with an unencoded `/`, `?`, `#`, space or `@` cannot end the mask early,
 * whatever a URL parser made of it (over-masking a later `@` is the safe side).
 */
export function redactUrl(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:).*@/gis, "$1***@");
}

const hints: Record<string, string> = {
  PRECONDITION_FAILED:
    "declare it with the options it already has, delete it first, or pass --no-declare to use it as it is",
  NOT_FOUND: "create it first (run 'kmq declare' with the same options) or drop --no-declare",
  RESOURCE_LOCKED: "another connection holds it exclusively; stop that consumer or use another queue",
  ACCESS_REFUSED: "check the user's permissions on this virtual host",
  NOT_ALLOWED: "check that the virtual host exists and the user may use it",
};

/**
 * Translates what the AMQP client or the socket threw into a {@link KmqError}. `what` names the
 * step that failed ("connecting to …", "declaring queue 'q'"), so the message says which entity.
 */
export function classifyError(err: unknown, what: string, secret?: string): KmqError {
  if (err instanceof KmqError) return err;
  const raw = err instanceof Error ? err.message : String(err);
  if (/Max number of channels reached/.test(raw)) {
    return new KmqError(
      ExitCode.usage,
      `${what}: the URL's channelMax allows fewer channels than kmq needs (at most 2 on one connection): ` +
        "raise it or drop it",
    );
  }
  // the broker's reasons may hold Erlang terms spread over several lines
  const text = mask(raw, secret).replace(/\s+/g, " ").trim();
  const code = /\((\d{3})\)\s*$/.exec(text)?.[1];
  // "NAME - detail (code)", or a bare "NAME (code)" (RabbitMQ's INTERNAL_ERROR has no detail)
  const reason = /(?:closed: )?([A-Z_]{6,})(?: - (.*))? \(\d{3}\)\s*$/.exec(text);
  if (reason) return refusal(what, reason[1] ?? "", reason[2] ?? "no detail given", code);
  if (/altnames|does not match certificate/i.test(text)) {
    return new KmqError(
      ExitCode.unreachable,
      `${what}: the broker's TLS certificate is not for this host (${text}); use a host name the certificate names`,
    );
  }
  if (/certificate|self[- ]signed|unable to (verify|get local issuer)/i.test(text)) {
    return new KmqError(
      ExitCode.unreachable,
      `${what}: the broker's TLS certificate is not trusted (${text}); pass the CA that signed it with --cacert`,
    );
  }
  if (
    /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ENETDOWN|ECONNRESET|ECONNABORTED|EPIPE|timed? ?out|Socket closed|Socket not connected|socket hang up|Connection ended|Connection closed|ended by the other party|TLS|SSL/i
      .test(text)
  ) {
    return new KmqError(
      ExitCode.unreachable,
      `${what}: ${text}; check that the broker runs and the host, port and TLS settings of --url are right`,
    );
  }
  return new KmqError(ExitCode.unexpected, `${what}: ${text}`, { cause: err });
}

/** A refusal the broker named ("NAME - detail (code)"): its exit code and the hint that fits. */
function refusal(what: string, name: string, detail: string, code: string | undefined): KmqError {
  const hint = hints[name] ?? "see the broker's log for details";
  if (name === "CONNECTION_FORCED") {
    return new KmqError(ExitCode.unreachable, `${what}: the broker closed the connection (${detail})`);
  }
  if (name === "NOT_IMPLEMENTED" && /automatic acknowledgement/.test(detail)) {
    return new KmqError(ExitCode.usage, `${what}: a stream queue needs acknowledgements: drop --no-ack`);
  }
  const typeWanted = /invalid arg '([^']+)'.*expected (integer|boolean|number), got longstr/.exec(detail);
  if (name === "PRECONDITION_FAILED" && typeWanted) {
    const [, arg = "", type = ""] = typeWanted;
    return new KmqError(
      ExitCode.usage,
      `${what}: the broker takes ${arg} as ${
        type === "integer" ? "an integer" : `a ${type}`
      }, and key=value ` +
        `gives a string: write it as key:=json (e.g. --queue-arg ${arg}:=${
          type === "boolean" ? "true" : "10"
        })`,
    );
  }
  if (name === "PRECONDITION_FAILED" && /invalid_stream_offset_arg/.test(detail)) {
    return new KmqError(
      ExitCode.usage,
      `${what}: the broker refused this --offset (${detail}): give first, last, next, an offset, a time or ` +
        "an interval such as 1h",
    );
  }
  if (name === "PRECONDITION_FAILED" && /invalid arg 'x-stream-offset'/.test(detail)) {
    return new KmqError(
      ExitCode.brokerRefused,
      `${what}: --offset reads streams only, and this queue is not one (${detail}); drop --offset`,
    );
  }
  if (name === "INTERNAL_ERROR") {
    return new KmqError(
      ExitCode.brokerRefused,
      `${what}: the broker failed on it (INTERNAL_ERROR - ${detail}); see the broker's log`,
    );
  }
  if (Number(code) >= 500 && name !== "NOT_ALLOWED") {
    // a protocol error is kmq's fault, not the user's: say so
    return new KmqError(ExitCode.unexpected, `${what}: ${name} - ${detail} (a kmq bug: please report it)`);
  }
  if (name === "ACCESS_REFUSED" && /login|authentication|PLAIN/i.test(detail)) {
    return new KmqError(
      ExitCode.accessRefused,
      `${what}: login refused (${name}): check the user name and password (--url, KMQ_URL, KMQ_PASSWORD or --password-file)`,
    );
  }
  const exit = name === "ACCESS_REFUSED" || name === "NOT_ALLOWED" || code === "530"
    ? ExitCode.accessRefused
    : ExitCode.brokerRefused;
  return new KmqError(exit, `${what}: ${name} - ${detail}; ${hint}`);
}

function mask(text: string, secret?: string): string {
  const redacted = redactUrl(text);
  // a short secret (guest) would mask the user name and other words too
  return secret && secret.length >= 6 ? redacted.split(secret).join("***") : redacted;
}
