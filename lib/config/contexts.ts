/**
 * Named contexts, as kubectl has them: a TOML file (smol-toml parses it) with `[contexts.NAME]`
 * tables of connection settings and a `default-context`. `--context NAME` / `KMQ_CONTEXT` picks
 * one; a flag or a KMQ_* variable still wins over each of its settings. A file that holds a
 * password is refused while others can read it, as ssh refuses such a key.
 */
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import process from "node:process";
import { parse, TomlError } from "smol-toml";
import { UsageError } from "../term/errors.ts";

export { configPath } from "./config-path.ts";

/** The settings a context may hold, by their keys in the file. */
export const CONTEXT_KEYS = ["url", "password-file", "cacert", "cert", "key", "api-url"] as const;

export interface Context {
  name: string;
  /** One address, or several joined with commas (failover, as -u takes them). */
  url?: string;
  passwordFile?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  apiUrl?: string;
}

export interface Config {
  path: string;
  defaultContext?: string;
  contexts: Map<string, Context>;
}

/** Reads and checks the file: exit 2 naming the file and what is wrong in it. */
export function readConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`config file '${path}' cannot be read (${(err as { code?: string }).code ?? err})`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    const where = err instanceof TomlError ? ` at line ${err.line}, column ${err.column}` : "";
    const what = (err as Error).message.split("\n")[0];
    throw new UsageError(`config file '${path}' is not valid TOML${where}: ${what}`);
  }
  const config: Config = { path, contexts: new Map() };
  for (const [key, value] of Object.entries(doc)) {
    if (key === "default-context" && typeof value === "string") config.defaultContext = value;
    else if (key === "contexts" && isTable(value)) {
      for (const [name, table] of Object.entries(value)) {
        config.contexts.set(name, contextOf(path, name, table));
      }
    } else {throw new UsageError(
        `config file '${path}': unknown key '${key}' (the keys are default-context and [contexts.NAME] tables)`,
      );}
  }
  if (config.defaultContext !== undefined && !config.contexts.has(config.defaultContext)) {
    throw new UsageError(
      `config file '${path}': default-context '${config.defaultContext}' is no context in it`,
    );
  }
  refuseReadablePasswords(config);
  return config;
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function contextOf(path: string, name: string, table: unknown): Context {
  if (!isTable(table)) throw new UsageError(`config file '${path}': contexts.${name} must be a table`);
  const context: Context = { name };
  for (const [key, value] of Object.entries(table)) {
    const at = `config file '${path}', context '${name}'`;
    if (!(CONTEXT_KEYS as readonly string[]).includes(key)) {
      throw new UsageError(`${at}: unknown key '${key}' (the keys are ${CONTEXT_KEYS.join(", ")})`);
    }
    if (
      key === "url" && Array.isArray(value) && value.length > 0 && value.every((u) => typeof u === "string")
    ) {
      context.url = value.join(",");
      continue;
    }
    if (typeof value !== "string" || value === "") {
      throw new UsageError(
        `${at}: ${key} must be ${key === "url" ? "a URL or a list of URLs" : "a file name"}`,
      );
    }
    const file = key !== "url" && key !== "api-url";
    const field = ({
      url: "url",
      "password-file": "passwordFile",
      cacert: "cacert",
      cert: "cert",
      key: "key",
      "api-url": "apiUrl",
    } as const)[key as (typeof CONTEXT_KEYS)[number]];
    context[field] = file ? filePath(path, value) : value;
  }
  return context;
}

/** `~/…` is in the home directory; a relative name is relative to the config file's directory. */
function filePath(config: string, value: string): string {
  if (value === "~" || value.startsWith("~/")) return join(homedir(), value.slice(1));
  return isAbsolute(value) ? value : resolve(dirname(config), value);
}

/** Passwords in the file's URLs are refused while the group or others may read it. */
function refuseReadablePasswords(config: Config): void {
  const holdsPassword = [...config.contexts.values()].some((c) =>
    (c.url ?? "").split(",").some((u) => /^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(u.trim()))
  );
  if (!holdsPassword || process.platform === "win32") return;
  const mode = statSync(config.path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new UsageError(
      `config file '${config.path}' holds a password and others can read it (mode ${mode.toString(8)}): ` +
        `chmod 600 '${config.path}', or move the password to a password-file`,
    );
  }
}

/**
 * The context a run uses: `name` (from --context or KMQ_CONTEXT), else the file's default, else
 * none. A name the file does not have, or a name without a file, is exit 2.
 */
export function chooseContext(path: string, name: string | undefined): Context | undefined {
  if (!existsSync(path)) {
    if (name === undefined) return undefined;
    throw new UsageError(
      `context '${name}' asked for, but there is no config file '${path}' (KMQ_CONFIG names another)`,
    );
  }
  const config = readConfig(path);
  const chosen = name ?? config.defaultContext;
  if (chosen === undefined) return undefined;
  const context = config.contexts.get(chosen);
  if (!context) {
    const names = [...config.contexts.keys()];
    throw new UsageError(
      `no context '${chosen}' in '${path}': ${
        names.length ? `the contexts are ${names.join(", ")}` : "it has none"
      }`,
    );
  }
  return context;
}

/** Sets `default-context` in the file, keeping the rest of its text (and its mode) as it was. */
export function useContext(path: string, name: string): void {
  const config = readConfig(path);
  if (!config.contexts.has(name)) {
    throw new UsageError(
      `no context '${name}' in '${path}': the contexts are ${[...config.contexts.keys()].join(", ")}`,
    );
  }
  const text = readFileSync(path, "utf8");
  const line = `default-context = ${JSON.stringify(name)}`;
  const next = /^\s*default-context\s*=.*$/m.test(text)
    ? text.replace(/^\s*default-context\s*=.*$/m, line)
    : `${line}\n${text}`;
  const temp = join(dirname(path), `.config.toml.${process.pid}`);
  writeFileSync(temp, next, { mode: statSync(path).mode & 0o777 });
  renameSync(temp, path);
}
