/**
 * The live line of `kmq bench` (a terminal's stderr only): the last second's rates and latency
 * percentiles, worked out once a second from the run's totals and a histogram of that second.
 */
import { Latency } from "./latency.ts";

export interface Totals {
  sent: number;
  confirmed: number;
  returned: number;
  nacked: number;
  received: number;
}

const ZERO: Totals = { sent: 0, confirmed: 0, returned: 0, nacked: 0, received: 0 };

export class LiveFigures {
  /** Latencies of the current second, emptied at each tick. */
  readonly e2e = new Latency();
  readonly confirms = new Latency();
  private previous = ZERO;
  private seconds = 0;
  private line: string[] = ["starting"];

  /** Called once a second with the run's totals so far. */
  tick(now: Totals): void {
    this.seconds++;
    const per = (key: keyof Totals) => (now[key] - this.previous[key]).toLocaleString("en-US");
    const latency = this.e2e.count > 0
      ? ` latency p50 ${this.e2e.at(50).toFixed(2)} ms p99 ${this.e2e.at(99).toFixed(2)} ms`
      : this.confirms.count > 0
      ? ` confirm p50 ${this.confirms.at(50).toFixed(2)} ms p99 ${this.confirms.at(99).toFixed(2)} ms`
      : "";
    this.line = [
      `${this.seconds} s: sent ${per("sent")}/s, confirmed ${per("confirmed")}/s, received ` +
      `${per("received")}/s, returned ${now.returned}, nacked ${now.nacked};${latency}`,
      `${this.seconds} s: ${per("sent")} sent/s, ${per("received")} received/s;${latency}`,
      `${per("sent")} out/s ${per("received")} in/s`,
    ];
    this.previous = { ...now };
    this.e2e.reset();
    this.confirms.reset();
  }

  /** The line in its wordings, longest first. */
  forms(): string[] {
    return this.line;
  }
}
