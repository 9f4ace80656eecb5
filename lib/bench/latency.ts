/**
 * Latencies for `kmq bench`, kept in HDR histograms (hdr-histogram-js): every value is counted, to
 * 3 significant digits, from 1 µs to an hour — no sampling reservoir, so p99.99 and the maximum
 * are what happened. Histograms of several runs merge exactly through their `.hgrm` output.
 */
import { build, type Histogram } from "hdr-histogram-js";

/** The percentiles a report gives, with the JSON key of each. */
export const PERCENTILES: [key: string, percentile: number][] = [
  ["p50", 50],
  ["p90", 90],
  ["p99", 99],
  ["p99_9", 99.9],
  ["p99_99", 99.99],
];

/** Milliseconds at each of {@link PERCENTILES}, and the largest. */
export type LatencySummary = Record<string, number> & { max: number; count: number };

const HOUR_US = 3_600_000_000;

export class Latency {
  private readonly histogram: Histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HOUR_US,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });

  /** Records one latency given in milliseconds (kept in microseconds; past an hour counts as an hour). */
  record(ms: number): void {
    const us = Math.round(ms * 1000);
    this.histogram.recordValue(Math.min(HOUR_US, Math.max(1, us)));
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  /** The value at `percentile` in milliseconds. */
  at(percentile: number): number {
    return this.histogram.getValueAtPercentile(percentile) / 1000;
  }

  summary(): LatencySummary {
    const max = this.histogram.maxValue / 1000;
    const out: Record<string, number> = {};
    // a percentile is its bucket's highest value, which can lie a little above the largest recorded
    for (const [key, p] of PERCENTILES) out[key] = Math.min(this.at(p), max);
    return Object.assign(out, { max, count: this.count });
  }

  /** The percentile distribution in HdrHistogram's `.hgrm` text form, values in milliseconds. */
  hgrm(): string {
    return this.histogram.outputPercentileDistribution(5, 1000);
  }

  reset(): void {
    this.histogram.reset();
  }
}
