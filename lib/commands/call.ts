import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { Buffer } from "node:buffer";
import type { Writable } from "node:stream";
import { closeQuietly, connect } from "../amqp/connection.ts";
import { declareTopology, topologyFrom } from "../amqp/declarations.ts";
import { classifyError, DeliveryError, ExitCode, InputError, KmqError, UsageError } from "../term/errors.ts";
import type { Log } from "../term/log.ts";
import { propertiesFrom, readBodies } from "./produce.ts";
import { checkJson } from "../messages/sources.ts";
import { ByteWriter, encodeProperties, writePublish } from "../amqp/wire.ts";
import type { Command } from "@commander-js/extra-typings";
import {
  type MessageCommand,
  messageCommand,
  type MessageOptions,
  messageOptionsFrom,
  type ProduceOptions,
} from "./message-options.ts";
import { type Done, seconds } from "./options.ts";

/** RabbitMQ's direct reply-to: replies come straight back to this channel's consumer. */
const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";

export interface CallIo {
  stdin: () => AsyncIterable<Uint8Array> & { isTTY?: boolean };
  stdout: Writable;
  log: Log;
}

/** `kmq call`: one request, its reply's body on stdout; exit 4 when no reply comes in time. */
export async function cmdCall(o: CallOptions, io: CallIo): Promise<void> {
  let body: Uint8Array | undefined;
  for await (const b of readBodies(o, io.stdin)) {
    if (body) throw new UsageError("kmq call sends one request: give one message");
    if (o.json) checkJson(b);
    body = b.bytes;
  }
  if (!body) throw new InputError("nothing to send: standard input was empty");

  const client = await connect({ broker: o.broker, name: "kmq call", log: io.log });
  try {
    const { channel } = await declareTopology(
      client,
      topologyFrom({ ...o.topology, queue: o.given.has("queue") ? o.topology.queue : undefined }),
      io.log,
      { broker: o.broker },
    );
    const correlationId = o.correlationId ?? crypto.randomUUID(); // the web API: node:crypto costs start-up time
    let answer: (msg: AMQPMessage) => void = () => {};
    let fail: (err: Error) => void = () => {};
    const reply = new Promise<AMQPMessage>((resolve, reject) => {
      answer = resolve;
      fail = reject;
    });
    channel.onReturn = (msg: AMQPMessage) =>
      fail(
        new DeliveryError(
          `the request was returned as unroutable (routing key '${msg.routingKey}'): no queue is bound for it; is the server running?`,
        ),
      );
    // the reply consumer must exist before the request names it
    try {
      await channel.basicConsume(DIRECT_REPLY_TO, { noAck: true }, (msg) => {
        if (msg.properties.correlationId === correlationId) answer(msg);
      });
    } catch (err) {
      throw classifyError(err, "consuming from amq.rabbitmq.reply-to");
    }
    const w = new ByteWriter();
    const props = { ...propertiesFrom(o, false), replyTo: DIRECT_REPLY_TO, correlationId };
    writePublish(
      w,
      channel.id,
      client.frameMax,
      o.topology.exchange,
      o.routingKey,
      o.mandatory,
      encodeProperties(props),
      body,
    );
    await client.send(Uint8Array.from(w.view()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() =>
        reject(
          new KmqError(
            ExitCode.unreachable,
            `nobody answered: no reply within ${o.timeout} s (correlation id ${correlationId}); ` +
              `is a server consuming from '${o.routingKey}'? raise --timeout to wait longer`,
          ),
        ), o.timeout * 1000);
    });
    try {
      const msg = await Promise.race([reply, timeout]);
      let body = msg.body ?? new Uint8Array(0);
      // a terminal's prompt would land on the reply's last line
      const tty = (io.stdout as { isTTY?: boolean }).isTTY === true;
      if (tty && body[body.length - 1] !== 10) body = Buffer.concat([body, Uint8Array.of(10)]);
      await new Promise<void>((resolve, reject) =>
        io.stdout.write(body, (err) => (err ? reject(err) : resolve()))
      );
    } finally {
      clearTimeout(timer);
    }
  } finally {
    await closeQuietly(client);
  }
}

export interface CallOptions extends ProduceOptions {
  /** Seconds to wait for the reply. */
  timeout: number;
}

/** produce's options that mean nothing for one request and its reply: hidden from call's help, refused. */
const CALL_UNUSED = ["repeat", "replyTo", "confirm", "lines", "jsonl", "rate", "compress"];

/** `kmq call`: produce's message options (those that fit one request), --timeout, help. */
export function defineCall(program: Command, done: Done): void {
  const call = messageCommand(
    program,
    "call",
    "send a request and print the reply (RPC over RabbitMQ's direct reply-to)",
  )
    .option("--timeout <seconds>", "wait this long for the reply (exit 4 after)", seconds("--timeout"), 30)
    .addHelpText(
      "after",
      `
Examples:
  kmq consume -e "" -q rpc --reply -- ./handler.sh    # the server, in another terminal
  kmq call -e "" -r rpc "question"`,
    )
    .action((messages, o, cmd) => {
      // shared with produce, but meaningless for one request and its reply
      const unused = CALL_UNUSED.find((key) => cmd.getOptionValueSource(key) === "cli");
      if (unused) {
        const flag = cmd.options.find((opt) => opt.attributeName() === unused)?.long ?? unused;
        throw new UsageError(
          `kmq call does not take ${flag}: it sends one request (an argument, stdin or --file) and waits for its reply`,
        );
      }
      const { timeout, ...rest } = o;
      const options: CallOptions = {
        ...messageOptionsFrom(messages, rest as MessageOptions, cmd as unknown as MessageCommand),
        timeout,
      };
      done({
        kind: "run",
        verbose: options.verbose,
        run: (io) => cmdCall(options, { stdin: io.stdin, stdout: io.stdout(), log: io.log }),
      });
    });

  for (const opt of call.options) {
    if (CALL_UNUSED.includes(opt.attributeName())) opt.hideHelp();
  }
}
