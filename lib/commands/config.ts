/**
 * `kmq config list|show NAME|use NAME`: the named contexts of the config file (lib/config/), with
 * passwords masked; `use` makes one the default.
 */
import type { Command } from "@commander-js/extra-typings";
import type { Writable } from "node:stream";
import { redactUrl, showControls } from "../term/errors.ts";
import { type Done, shortString } from "./options.ts";

const EXAMPLE = `
A config file (KMQ_CONFIG, or $XDG_CONFIG_HOME/kmq/config.toml, or ~/.config/kmq/config.toml):

  default-context = "dev"

  [contexts.dev]
  url = "amqp://guest:guest@localhost:5672/"

  [contexts.staging]
  url = ["amqps://ops@mq1.staging:5671/app", "amqps://ops@mq2.staging:5671/app"]
  password-file = "~/.secrets/staging-mq"
  cacert = "/etc/ssl/staging-ca.pem"
  api-url = "https://mq1.staging:15671/"

--context NAME (or KMQ_CONTEXT) picks one for a run; each flag and KMQ_* variable still wins over
its setting. A file with a password in a URL must not be readable by others (chmod 600).`;

/** Host, vhost and user of each address, the password masked. */
function describe(url: string | undefined): string {
  if (url === undefined) return "(no url: kmq's default)";
  return url.split(",").map((u) => {
    try {
      const parsed = new URL(u.trim());
      const vhost = decodeURIComponent(parsed.pathname.slice(1)) || "/";
      const user = decodeURIComponent(parsed.username) || "guest";
      return `${parsed.protocol}//${parsed.host} vhost '${vhost}' user '${user}'`;
    } catch {
      return redactUrl(u.trim());
    }
  }).join(", ");
}

async function list(out: Writable): Promise<void> {
  const { configPath, readConfig } = await import("../config/contexts.ts");
  const config = readConfig(configPath());
  const lines = [...config.contexts.values()].map((c) =>
    `${c.name === config.defaultContext ? "*" : " "} ${c.name}  ${describe(c.url)}`
  );
  out.write(lines.length ? lines.map(showControls).join("\n") + "\n" : `no contexts in '${config.path}'\n`);
}

async function show(name: string, out: Writable): Promise<void> {
  const { configPath, chooseContext } = await import("../config/contexts.ts");
  const c = chooseContext(configPath(), name)!;
  const rows: [string, string | undefined][] = [
    ["url", c.url === undefined ? undefined : c.url.split(",").map((u) => redactUrl(u.trim())).join(", ")],
    ["password-file", c.passwordFile],
    ["cacert", c.cacert],
    ["cert", c.cert],
    ["key", c.key],
    ["api-url", c.apiUrl === undefined ? undefined : redactUrl(c.apiUrl)],
  ];
  const text = [
    `context ${c.name}`,
    ...rows.filter(([, v]) => v !== undefined).map(([k, v]) => `  ${k} = ${v}`),
  ];
  out.write(text.map(showControls).join("\n") + "\n");
}

async function use(name: string, out: Writable): Promise<void> {
  const { configPath, useContext } = await import("../config/contexts.ts");
  useContext(configPath(), name);
  out.write(`default context: ${showControls(name)}\n`);
}

export function defineConfig(program: Command, done: Done): void {
  const config = program.command("config").description("named contexts: list, show and choose the default")
    .addHelpText("after", EXAMPLE);
  const run = (work: (out: Writable) => Promise<void>) =>
    done({ kind: "run", verbose: false, run: (io) => work(io.stdout()) });
  config.command("list").description("the contexts, * marking the default (passwords masked)")
    .action(() => run(list));
  config.command("show").description("one context's settings (passwords masked)")
    .argument("<name>", "the context", shortString("the context name"))
    .action((name) => run((out) => show(name, out)));
  config.command("use").description("make a context the default (default-context in the file)")
    .argument("<name>", "the context", shortString("the context name"))
    .action((name) => run((out) => use(name, out)));
}
