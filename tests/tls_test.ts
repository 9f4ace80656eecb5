/**
 * TLS against a private node with a TLS listener, with certificates made at test time; and the
 * ways to keep a password off the command line (KMQ_PASSWORD, --password-file).
 */
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { makeCertificates } from "./certificates.ts";
import { assertFailure, run, Running, TEST_URL } from "./helpers.ts";
import { PrivateBroker } from "./private_broker.ts";

const SECRET = "tls-s3cr3t-Passw0rd";

Deno.test({
  name: "TLS: --cacert, --cert/--key and KMQ_CACERT; wrong CA or host name is exit 4",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const certs = await makeCertificates();
    const node = new PrivateBroker({ cacert: certs.ca, cert: certs.serverCert, key: certs.serverKey });
    try {
      await node.start();
      const tlsUrl = (host: string, password = "guest") =>
        `amqps://guest:${password}@${host}:${node.tlsPort}/`;
      const q = ["-e", "", "-r", "tls-q", "-q", "tls-q"];

      await t.step("the right CA connects: produce and consume over TLS", async () => {
        const p = await run(["produce", ...q, "--cacert", certs.ca, "over tls"], {
          env: { KMQ_URL: tlsUrl("localhost") },
        });
        assertEquals(p.code, 0, p.stderr);
        const c = await run(["consume", "-q", "tls-q", "-e", "", "-n", "1"], {
          env: { KMQ_URL: tlsUrl("localhost"), KMQ_CACERT: certs.ca },
        });
        assertEquals(c.code, 0, c.stderr);
        assertEquals(c.stdout, "over tls\n");
      });

      await t.step("a client certificate is presented and accepted", async () => {
        const consumer = new Running(
          [
            "consume",
            "-q",
            "tls-q",
            "-e",
            "",
            "--cacert",
            certs.ca,
            "--cert",
            certs.clientCert,
            "--key",
            certs.clientKey,
          ],
          { env: { KMQ_URL: tlsUrl("localhost") } },
        );
        try {
          let subjects = "";
          for (let i = 0; i < 50 && !subjects.includes("kmq-client"); i++) {
            await new Promise((r) => setTimeout(r, 200));
            const out = await new Deno.Command("rabbitmqctl", {
              args: ["-n", node.node, "-q", "list_connections", "peer_cert_subject"],
              stdout: "piped",
              stderr: "null",
            }).output();
            subjects = new TextDecoder().decode(out.stdout);
          }
          assertMatch(subjects, /CN=kmq-client/);
        } finally {
          consumer.kill("SIGTERM");
          const r = await consumer.result();
          assertEquals(r.code, 143, r.stderr);
        }
      });

      await t.step("a CA that did not sign the broker's certificate: exit 4", async () => {
        const r = await run(["produce", ...q, "--cacert", certs.otherCa, "x"], {
          env: { KMQ_URL: tlsUrl("localhost", SECRET) },
        });
        assertFailure(r, 4, /TLS certificate is not trusted .*pass the CA that signed it with --cacert/);
        assert(!r.stderr.includes(SECRET), "password never printed");
      });

      await t.step("no --cacert: the system's CAs do not know the test CA: exit 4", async () => {
        const r = await run(["produce", ...q, "x"], { env: { KMQ_URL: tlsUrl("localhost") } });
        assertFailure(r, 4, /TLS certificate is not trusted/);
      });

      await t.step("a host name the certificate does not name: exit 4", async () => {
        const r = await run(["produce", ...q, "--cacert", certs.ca, "x"], {
          env: { KMQ_URL: tlsUrl("127.0.0.1", SECRET) },
        });
        assertFailure(r, 4, /TLS certificate is not for this host .*127\.0\.0\.1/);
        assert(!r.stderr.includes(SECRET), "password never printed");
      });

      await t.step("insecure in the URL connects, and warns on every run", async () => {
        for (let i = 0; i < 2; i++) {
          const r = await run(["produce", ...q, "x"], {
            env: { KMQ_URL: `${tlsUrl("127.0.0.1")}?insecure` },
          });
          assertEquals(r.code, 0, r.stderr);
          assertMatch(r.stderr, /TLS certificate verification is OFF/, `run ${i + 1}`);
        }
      });

      await t.step(
        "TLS files: missing is exit 3, without amqps:// or --cert without --key is exit 2",
        async () => {
          const env = { KMQ_URL: tlsUrl("localhost") };
          assertFailure(
            await run(["produce", "--cacert", "/nonexistent/ca.pem", "x"], { env }),
            3,
            /--cacert file '\/nonexistent\/ca.pem' does not exist/,
          );
          assertFailure(
            await run(["produce", "--cacert", certs.ca, "x"], { env: { KMQ_URL: TEST_URL } }),
            2,
            /--cacert needs an amqps:\/\/ URL/,
          );
          assertFailure(
            await run(["produce", "--cacert", certs.ca, "--cert", certs.clientCert, "x"], { env }),
            2,
            /--cert and --key go together/,
          );
        },
      );
    } finally {
      await node.close();
      await certs.close();
    }
  },
});

const noPassword = TEST_URL.replace(/\/\/([^:@/]+):[^@]*@/, "//$1@");

Deno.test("KMQ_PASSWORD supplies the password, and wins over the URL's", async () => {
  const ok = await run(["produce", "-e", "", "-r", "nowhere", "--no-mandatory", "x"], {
    env: { KMQ_URL: noPassword, KMQ_PASSWORD: "guest" },
  });
  assertEquals(ok.code, 0, ok.stderr);
  const wins = await run(["produce", "-e", "", "-r", "nowhere", "--no-mandatory", "x"], {
    env: { KMQ_URL: TEST_URL.replace(/:guest@/, `:${SECRET}@`), KMQ_PASSWORD: "guest" },
  });
  assertEquals(wins.code, 0, wins.stderr);
  const wrong = await run(["produce", "x"], { env: { KMQ_URL: noPassword, KMQ_PASSWORD: SECRET } });
  assertFailure(wrong, 5, /login refused.*KMQ_PASSWORD/);
  assert(!wrong.stderr.includes(SECRET), "password never printed");
});

Deno.test("--password-file reads the first line; a missing file is exit 3", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/pw`, "guest\n");
    const ok = await run([
      "produce",
      "--password-file",
      `${dir}/pw`,
      "-e",
      "",
      "-r",
      "nowhere",
      "--no-mandatory",
      "x",
    ], {
      env: { KMQ_URL: noPassword },
    });
    assertEquals(ok.code, 0, ok.stderr);
    await Deno.writeTextFile(`${dir}/bad`, `${SECRET}\r\n`);
    const bad = await run(["produce", "x"], {
      env: { KMQ_URL: noPassword, KMQ_PASSWORD_FILE: `${dir}/bad` },
    });
    assertFailure(bad, 5, /login refused/);
    assert(!bad.stderr.includes(SECRET), "password never printed");
    assertFailure(
      await run(["produce", "--password-file", `${dir}/none`, "x"]),
      3,
      /--password-file file '.*\/none' does not exist/,
    );
    assertFailure(await run(["produce", "--password-file", dir, "x"]), 3, /is a directory/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
