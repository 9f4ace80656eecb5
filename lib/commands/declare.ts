import type { DeclareOptions } from "./registry.ts";
import { closeQuietly, connect } from "../amqp/connection.ts";
import { declareTopology, topologyFrom } from "../amqp/declarations.ts";
import type { Log } from "../term/log.ts";

/** `kmq declare`: the topology produce and consume would declare, for setup scripts. */
export async function cmdDeclare(o: DeclareOptions, log: Log): Promise<void> {
  const client = await connect({ broker: o.broker, name: "kmq declare", log });
  try {
    await declareTopology(client, topologyFrom(o.topology), log);
  } finally {
    await closeQuietly(client);
  }
}
