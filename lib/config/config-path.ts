/** Where the config file is: apart from its reader, so finding there is none costs no TOML parser. */
import { homedir } from "node:os";
import { join } from "node:path";
import process from "node:process";

/** `KMQ_CONFIG`, or `$XDG_CONFIG_HOME/kmq/config.toml`, or `~/.config/kmq/config.toml`. */
export function configPath(): string {
  if (process.env.KMQ_CONFIG) return process.env.KMQ_CONFIG;
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "kmq", "config.toml");
}
