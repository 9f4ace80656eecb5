/**
 * Interoperability with the seed itself: Kombu's producer.py and consumer.py (Debian's
 * python3-kombu), both with their default settings, against kmq with its defaults.
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
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

Deno.test(
  { name: "kombu: compression both ways (zlib, and brotli with python3-brotli)", ignore },
  async () => {
    const q = unique("kmq-kombu-q");
    const script = `${DIR}compressed.py`;
    await withCleanup({ queues: [q] }, async () => {
      assertEquals((await run(["declare", "-e", "", "-q", q])).code, 0);
      // Kombu compresses, kmq --decode undoes it; without --decode the header says how it is packed
      for (let i = 0; i < 2; i++) {
        const sent = await new Deno.Command(PYTHON, {
          args: [script, "send", TEST_URL, q, "zlib", "from kombu"],
        })
          .output();
        assertEquals(sent.code, 0, new TextDecoder().decode(sent.stderr));
      }
      const plain = await run(["consume", "-e", "", "-q", q, "-n", "1", "--decode"]);
      assertEquals([plain.code, plain.stdout], [0, "from kombu\n"], plain.stderr);
      const raw = await run(["consume", "-e", "", "-q", q, "-n", "1", "-o", "json"]);
      const record = JSON.parse(raw.stdout);
      assertEquals(record.properties.headers, { compression: "application/x-gzip" });
      assert(record.body_base64 !== undefined, "still compressed without --decode");
      // kmq compresses, Kombu decodes
      const p = await run(["produce", "-e", "", "-r", q, "--compress", "zlib", "from kmq"]);
      assertEquals(p.code, 0, p.stderr);
      const got = await new Deno.Command(PYTHON, { args: [script, "get", TEST_URL, q] }).output();
      assertEquals(got.code, 0, new TextDecoder().decode(got.stderr));
      assertEquals(JSON.parse(new TextDecoder().decode(got.stdout)), {
        body: "from kmq",
        compression: "application/x-gzip",
      });
      const b = await run(["produce", "-e", "", "-r", q, "--compress", "brotli", "squeezed"]);
      assertEquals(b.code, 0, b.stderr);
      const back = await run(["consume", "-e", "", "-q", q, "-n", "1", "--decode", "-o", "json"]);
      const decoded = JSON.parse(back.stdout);
      assertEquals([decoded.body, decoded.properties.headers], ["squeezed", {}]);
      // brotli with Kombu (which registers it only when the brotli module imports): both ways
      const kombuBrotli = await new Deno.Command(PYTHON, {
        args: [script, "send", TEST_URL, q, "brotli", "br from kombu"],
      })
        .output();
      assertEquals(kombuBrotli.code, 0, new TextDecoder().decode(kombuBrotli.stderr));
      const unpacked = await run(["consume", "-e", "", "-q", q, "-n", "1", "--decode"]);
      assertEquals([unpacked.code, unpacked.stdout], [0, "br from kombu\n"], unpacked.stderr);
      assertEquals(
        (await run(["produce", "-e", "", "-r", q, "--compress", "brotli", "br from kmq"])).code,
        0,
      );
      const kombuGot = await new Deno.Command(PYTHON, { args: [script, "get", TEST_URL, q] }).output();
      assertEquals(kombuGot.code, 0, new TextDecoder().decode(kombuGot.stderr));
      assertEquals(JSON.parse(new TextDecoder().decode(kombuGot.stdout)), {
        body: "br from kmq",
        compression: "application/x-brotli",
      });
    });
  },
);

Deno.test(
  { name: "kombu: a binary body kmq labels application/data reaches Kombu as bytes", ignore },
  async () => {
    const q = unique("kmq-kombu-q");
    await withCleanup({ queues: [q] }, async () => {
      const bytes = Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 0xff, 0xfe, 0x00, 0x01]);
      const p = await run(["produce", "-e", "", "-r", q, "-q", q], { stdin: bytes });
      assertEquals(p.code, 0, p.stderr);
      const got = await new Deno.Command(PYTHON, { args: [`${DIR}compressed.py`, "get", TEST_URL, q] })
        .output();
      assertEquals(got.code, 0, new TextDecoder().decode(got.stderr));
      assertEquals(JSON.parse(new TextDecoder().decode(got.stdout)).body, {
        bytes: btoa(String.fromCharCode(...bytes)),
      });
    });
  },
);

Deno.test({ name: "kombu: bzip2 and lzma both ways, byte-exact from kmq to kmq", ignore }, async () => {
  const q = unique("kmq-kombu-q");
  const script = `${DIR}compressed.py`;
  const text = "from kombu, déjà vu ✓ ".repeat(50);
  await withCleanup({ queues: [q] }, async () => {
    assertEquals((await run(["declare", "-e", "", "-q", q])).code, 0);
    for (const [method, header] of [["bzip2", "application/x-bz2"], ["lzma", "application/x-lzma"]]) {
      // Kombu's names: "bzip2" and "lzma" (which writes .xz)
      const sent = await new Deno.Command(PYTHON, { args: [script, "send", TEST_URL, q, method!, text] })
        .output();
      assertEquals(sent.code, 0, new TextDecoder().decode(sent.stderr));
      const plain = await run(["consume", "-e", "", "-q", q, "-n", "1", "--decode", "-o", "raw"]);
      assertEquals([plain.code, plain.stdout], [0, text], `${method}: ${plain.stderr}`);
      // kmq compresses, Kombu decodes
      const p = await run(["produce", "-e", "", "-r", q, "--compress", method!, text]);
      assertEquals(p.code, 0, p.stderr);
      const got = await new Deno.Command(PYTHON, { args: [script, "get", TEST_URL, q] }).output();
      assertEquals(got.code, 0, new TextDecoder().decode(got.stderr));
      assertEquals(JSON.parse(new TextDecoder().decode(got.stdout)), { body: text, compression: header });
      // kmq to kmq, bytes that are not UTF-8 and text that is, unchanged
      for (
        const body of [
          Uint8Array.from([0xff, 0xfe, 0, 1, 0xc0, 0x80, 0xed, 0xa0, 0x80]),
          new TextEncoder().encode(text),
        ]
      ) {
        const b = await run(["produce", "-e", "", "-r", q, "--compress", method!], { stdin: body });
        assertEquals(b.code, 0, b.stderr);
        const back = await run(["consume", "-e", "", "-q", q, "-n", "1", "--decode", "-o", "json"]);
        assertEquals(back.code, 0, back.stderr);
        const record = JSON.parse(back.stdout);
        const bytes = record.body_base64 !== undefined
          ? Uint8Array.from(atob(record.body_base64), (c) => c.charCodeAt(0))
          : new TextEncoder().encode(record.body);
        assertEquals([method, [...bytes]], [method, [...body]]);
        assertEquals(record.properties.headers, {});
      }
    }
  });
});

Deno.test(
  { name: "kombu: a compressed body that would decompress past 128 MiB is refused", ignore },
  async () => {
    const q = unique("kmq-kombu-q");
    const script = `${DIR}compressed.py`;
    await withCleanup({ queues: [q] }, async () => {
      assertEquals((await run(["declare", "-e", "", "-q", q])).code, 0);
      for (const method of ["zlib", "bzip2", "lzma"]) {
        const sent = await new Deno.Command(PYTHON, {
          args: [script, "zeros", TEST_URL, q, method, String(129 * 1024 * 1024)],
        }).output();
        assertEquals(sent.code, 0, new TextDecoder().decode(sent.stderr));
        const c = await run([
          "consume",
          "-e",
          "",
          "-q",
          q,
          "-n",
          "1",
          "--decode",
          "-o",
          "raw",
          "--idle-timeout",
          "2",
        ]);
        assertEquals(c.stdout, "");
        assertEquals(c.code, 8, c.stderr);
        assertMatch(
          c.stderr,
          /stays in the queue: its .* body does not decode: it is larger than 134217728 bytes/,
        );
        // not lost: the message is still there for a consumer without --decode (then purged)
        assertEquals((await run(["purge", q])).stdout, `purged 1 message(s) from queue '${q}'\n`);
      }
    });
  },
);
