/** What an import is asked to do, what it found in the file, and how it ends when stopped. */
import type { Writable } from "node:stream";
import type { BrokerOptions } from "../amqp/connection.ts";
import { ExitCode, KmqError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import type { ProgressStream } from "../term/progress.ts";
import type { ExportHeader } from "./export-file.ts";
import type { Transform } from "./import-topology.ts";
import type { VhostDefinitions } from "./vhost-definitions.ts";

export interface ImportOptions {
  broker: BrokerOptions;
  file: string;
  progress?: string;
  transform: Transform;
  policies: boolean;
  messages: boolean;
  append: boolean;
  /** Check the file and say what it holds; nothing is declared or published. */
  checkOnly: boolean;
  stopTimeout: number;
}

export interface ImportIo {
  log: Log;
  stdout: Writable;
  stop: AbortSignal;
  stderr: ProgressStream;
}

/** A queue part as the check of the file found it. */
export interface QueuePart {
  index: number;
  queue: string;
  type: string;
  messages: number;
}

export interface CheckedFile {
  header: ExportHeader;
  definitions?: VhostDefinitions;
  parts: QueuePart[];
  /** The export's identity, for the progress file. */
  exportId: string;
}

export function checkNotStopped(stop: AbortSignal, what: string): void {
  if (!stop.aborted) return;
  const signal = String(stop.reason);
  throw new KmqError(
    signal === "SIGINT" ? ExitCode.interrupted : ExitCode.terminated,
    `stopped by ${signal}: ${what}; run the same command again to carry on`,
  );
}
