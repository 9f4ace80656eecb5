/**
 * Pacing (--rate) and the live progress line that produce and move draw on a terminal's stderr.
 */
import process from "node:process";

/** Where a live line goes; drawn only when it is a terminal with cursor control. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

/** Sleeps just enough to keep the sending rate at or under `rate` messages per second. */
export async function pace(sent: number, rate: number, started: number): Promise<void> {
  const due = started + (sent / rate) * 1000;
  const ahead = due - performance.now();
  if (ahead > 1) await new Promise((r) => setTimeout(r, ahead));
}

/** Resolves at the performance.now() time `at` (never before: a timer may fire early), or once `stop` aborts. */
export function sleepUntil(at: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout>;
    const done = () => {
      clearTimeout(timer);
      stop.removeEventListener("abort", done);
      resolve();
    };
    const wait = () => {
      const ahead = at - performance.now();
      if (ahead <= 0 || stop.aborted) return done();
      timer = setTimeout(wait, Math.ceil(ahead));
    };
    stop.addEventListener("abort", done, { once: true });
    wait();
  });
}

/**
 * Redraws the progress line every 250 ms on a terminal's stderr (nothing elsewhere, nor on a dumb
 * terminal, which has no cursor control to redraw with); the returned function clears it.
 * `forms` gives the line longest first: the first that fits the pane is drawn, so a narrow pane
 * gets a shorter wording with its unit rather than a line cut before it.
 */
export function liveLine(stream: ProgressStream, forms: () => string[]): () => void {
  if (stream.isTTY !== true || process.env.TERM === "dumb") return () => {};
  const timer = setInterval(() => {
    // read each time (a resize redraws); a wrapped line would not be overwritten, and a Ctrl-C
    // echoed as "^C" after it would wrap it, leaving it behind: three columns are kept free
    const width = Math.max(10, (stream.columns ?? 80) - 3);
    const all = forms();
    const line = all.find((f) => f.length <= width) ?? (all[all.length - 1] ?? "").slice(0, width);
    stream.write(`\r\x1b[K${line}`);
  }, 250);
  (timer as unknown as { unref?: () => void }).unref?.();
  return () => {
    clearInterval(timer);
    stream.write("\r\x1b[K");
  };
}

/** Messages per second since `started` (a performance.now() time). */
export function perSecond(count: number, started: number): number {
  const s = (performance.now() - started) / 1000;
  return s > 0 ? Math.round(count / s) : count;
}
