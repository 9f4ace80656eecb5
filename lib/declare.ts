import type { DeclareOptions } from "./cli.ts";
import { closeQuietly, connect } from "./connection.ts";
import { declareTopology, topologyFrom } from "./declarations.ts";
import type { Log } from "./log.ts";

/** `kmq declare`: the topology produce and consume would declare, for setup scripts. */
export async function cmdDeclare(o: DeclareOptions, log: Log): Promise<void> {
  const client = await connect({ broker: o.broker, name: "kmq declare", log });
  try {
    await declareTopology(client, topologyFrom(o.topology), log);
  } finally {
    await closeQuietly(client);
  }
}
