/**
 * Where an import stands, kept in a small file beside the export (FILE.import-progress unless
 * --progress): per queue, how many of its messages the target confirmed, in file order. Written
 * atomically (a temporary file synced, then renamed) so a kill at any point leaves the previous
 * state or the next, never half of one.
 */
import { open, readFile, rename } from "node:fs/promises";
import { UsageError } from "../term/errors.ts";

export interface ProgressState {
  /** Which export this is (its header's time and definitions' checksum). */
  exportId: string;
  /** Which broker and vhost it goes to. */
  target: string;
  /** Queue name on the target → messages of its part confirmed (the first n). */
  confirmed: Map<string, number>;
  /** Queue name on the target → messages it held before the import began. */
  before: Map<string, number>;
}

export class ImportProgress {
  private saving: Promise<void> = Promise.resolve();

  private constructor(readonly path: string, readonly state: ProgressState) {}

  /** The progress recorded for this export and target, or a fresh one; another's is exit 2. */
  static async load(path: string, exportId: string, target: string): Promise<ImportProgress> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      if ((err as { code?: string }).code !== "ENOENT") {
        throw new UsageError(`cannot read the progress file ${path}: ${(err as Error).message}`);
      }
      return new ImportProgress(path, { exportId, target, confirmed: new Map(), before: new Map() });
    }
    let v: {
      export_id?: string;
      target?: string;
      confirmed?: [string, number][];
      before?: [string, number][];
    };
    try {
      v = JSON.parse(text);
    } catch {
      throw new UsageError(`the progress file ${path} is damaged: remove it to import from the start`);
    }
    if (v.export_id !== exportId) {
      throw new UsageError(
        `the progress file ${path} belongs to another export: remove it (or give --progress OTHER) to import this one`,
      );
    }
    if (v.target !== target) {
      throw new UsageError(
        `the progress file ${path} records an import into ${v.target}, not ${target}: ` +
          "give --progress OTHER for a second target",
      );
    }
    const state: ProgressState = {
      exportId,
      target,
      confirmed: new Map(v.confirmed ?? []),
      before: new Map(v.before ?? []),
    };
    return new ImportProgress(path, state);
  }

  /** Saves the state as it is now (saves run one after another, the latest last). */
  save(): Promise<void> {
    const text = JSON.stringify({
      kmq_import_progress: 1,
      export_id: this.state.exportId,
      target: this.state.target,
      confirmed: [...this.state.confirmed],
      before: [...this.state.before],
    }) + "\n";
    this.saving = this.saving.then(() => writeAtomically(this.path, text));
    return this.saving;
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}
