/** What a `kmq bench` run measured, as lines for people or one JSON object for scripts. */
import type { BenchOptions } from "./bench-options.ts";
import { type LatencySummary, PERCENTILES } from "./latency.ts";

/** The report; its keys are the `-o json` keys. */
export interface BenchFigures {
  producers: number;
  consumers: number;
  queue_type: string;
  queues: string[];
  size: number;
  rate: number;
  confirm_window: number;
  persistent: boolean;
  sent: number;
  confirmed: number;
  returned: number;
  nacked: number;
  received: number;
  /** Received messages that this run did not publish (a --predeclared queue's older ones). */
  foreign: number;
  duration_s: number;
  send_rate: number;
  receive_rate: number;
  /** Publish (when due) → handled by a consumer; null when nothing was timed. */
  latency_ms: LatencySummary | null;
  /** Publish (when due) → the broker's confirm; null without confirms. */
  confirm_latency_ms: LatencySummary | null;
  coordinated_omission_corrected: boolean;
  /** Messages published but not yet received when the producers stopped. */
  backlog_at_send_end: number;
  consumers_fell_behind: boolean;
  /** Ready and unacked messages in the bench's queues at the end, as the broker counts them; null for a stream. */
  left_in_queues: number | null;
  /** The signal that stopped the run early, if one did. */
  stopped_by: string | null;
}

const count = (n: number) => n.toLocaleString("en-US");
const ms = (n: number) => `${n < 10 ? n.toFixed(3) : n < 100 ? n.toFixed(2) : n.toFixed(1)} ms`;

function latencyLine(label: string, l: LatencySummary | null, what: string): string | undefined {
  if (!l || l.count === 0) return undefined;
  const parts = PERCENTILES.map(([key, p]) => `p${p} ${ms(l[key] ?? 0)}`);
  return `${label.padEnd(11)} ${parts.join("  ")}  max ${ms(l.max)}  (${what}, ${count(l.count)} timed)`;
}

function setupLine(f: BenchFigures, o: BenchOptions): string {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const queues = o.predeclared
    ? `queue '${o.predeclared}'`
    : plural(f.queues.length, `${f.queue_type} queue`);
  const body = o.body ? `${count(o.body.length)}-byte body file` : `${count(f.size)}-byte`;
  const confirms = f.confirm_window > 0 ? `confirms (window ${count(f.confirm_window)})` : "no confirms";
  const rate = f.rate > 0 ? `, ${count(f.rate)} msg/s per producer` : "";
  return `kmq bench: ${plural(f.producers, "producer")}, ${plural(f.consumers, "consumer")} on ${queues}; ` +
    `${body} ${f.persistent ? "persistent" : "transient"} messages, ${confirms}${rate}; ` +
    `${f.duration_s.toFixed(1)} s`;
}

/** The report as people read it (stdout). */
export function reportText(f: BenchFigures, o: BenchOptions): string {
  const lines = [setupLine(f, o)];
  if (f.producers > 0) {
    lines.push(
      `${"sent".padEnd(11)} ${count(f.sent)} (${count(f.send_rate)} msg/s); confirmed ${
        count(f.confirmed)
      }, ` +
        `returned ${count(f.returned)}, nacked ${count(f.nacked)}`,
    );
  }
  if (f.consumers > 0) {
    lines.push(
      `${"received".padEnd(11)} ${count(f.received)} (${count(f.receive_rate)} msg/s)` +
        (f.foreign > 0 ? `, ${count(f.foreign)} of them not from this run (not timed)` : ""),
    );
  }
  const due = f.coordinated_omission_corrected
    ? "from when each message was due at --rate: corrected for coordinated omission"
    : "from when each message was sent";
  const e2e = latencyLine("latency", f.latency_ms, `publish → received, ${due}`);
  const confirms = latencyLine("confirms", f.confirm_latency_ms, "publish → confirm");
  for (const line of [e2e, confirms]) if (line) lines.push(line);
  if (f.consumers_fell_behind) {
    lines.push(
      `${"behind".padEnd(11)} the consumers fell behind: ${count(f.backlog_at_send_end)} message(s) were ` +
        "waiting when the producers stopped; the receive rate is what they sustained",
    );
  }
  if (f.left_in_queues !== null) {
    lines.push(
      `${"left".padEnd(11)} ${
        f.left_in_queues === 0 ? "nothing" : `${count(f.left_in_queues)} message(s)`
      } in the queues at the end (the broker's count)`,
    );
  }
  return lines.join("\n") + "\n";
}

/** The report as one JSON object (`-o json`). */
export function reportJson(f: BenchFigures): string {
  return JSON.stringify(f) + "\n";
}
