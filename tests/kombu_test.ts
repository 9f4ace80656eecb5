/**
 * Interoperability with the seed itself: Kombu's producer.py and consumer.py (Debian's
 * python3-kombu), both with their default settings, against kmq with its defaults.
 */
import { assertEquals } from "./assert.ts";
import { run, skipWithoutPython, startConsumer, TEST_URL, unique, withCleanup } from "./helpers.ts";

const PYTHON = "/usr/bin/python3";
const DIR = new URL("./kombu/", import.meta.url).pathname;

const ignore = await skipWithoutPython("kombu");

Deno.test({ name: "kombu: consumer.py receives what kmq produce sends", ignore }, async () => {
  const ex = unique("kmq-kombu-ex");
  const q = unique("kmq-kombu-q");
  await withCleanup({ queues: [q], exchanges: [ex] }, async () => {
    // kmq declares first; Kombu then declares the same entities: no PRECONDITION_FAILED either way
    const d = await run(["declare", "-e", ex, "-q", q]);
    assertEquals(d.code, 0, d.stderr);
    const p = await run(["produce", "-e", ex, "Hello World!"]);
    assertEquals(p.code, 0, p.stderr);
    const out = await new Deno.Command(PYTHON, {
      args: [`${DIR}consumer.py`, TEST_URL, ex, q, "test"],
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    assertEquals(JSON.parse(new TextDecoder().decode(out.stdout)), {
      body: "Hello World!",
      content_type: "text/plain",
      delivery_mode: 2,
    });
  });
});

Deno.test({ name: "kombu: kmq consume receives what producer.py sends", ignore }, async () => {
  const ex = unique("kmq-kombu-ex");
  const q = unique("kmq-kombu-q");
  await withCleanup({ queues: [q], exchanges: [ex] }, async () => {
    const consumer = await startConsumer([
      "-e",
      ex,
      "-q",
      q,
      "-n",
      "1",
      "-o",
      "json",
      "--accept",
      "text/plain",
    ]);
    const p = await new Deno.Command(PYTHON, {
      args: [`${DIR}producer.py`, TEST_URL, ex, "test", "Hello World!"],
    }).output();
    assertEquals(p.code, 0, new TextDecoder().decode(p.stderr));
    const r = await consumer.result();
    assertEquals(r.code, 0, r.stderr);
    const record = JSON.parse(r.stdout);
    assertEquals(record.body, "Hello World!");
    assertEquals(record.properties.content_type, "text/plain");
    assertEquals(record.properties.content_encoding, "utf-8");
    assertEquals(record.properties.delivery_mode, 2);
  });
});
