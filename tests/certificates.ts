/**
 * Certificates made with openssl at test time: a CA, a server certificate for `localhost` only
 * (so 127.0.0.1 is the wrong host name), a client certificate, and a CA nobody signed anything with.
 */
export interface TestCertificates {
  dir: string;
  ca: string;
  otherCa: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  close(): Promise<void>;
}

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A new 2048-bit RSA key in `name.key`, for the subject CN=name. */
const newKey = (
  name: string,
) => ["-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${name}`, "-keyout", `${name}.key`];

async function selfSigned(dir: string, name: string): Promise<void> {
  await openssl(dir, "req", "-x509", ...newKey(name), "-days", "2", "-out", `${name}.pem`);
}

async function signed(dir: string, name: string, ext: string): Promise<void> {
  await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
  await openssl(dir, "req", ...newKey(name), "-out", `${name}.csr`);
  const ca = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"];
  await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    ...ca,
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.pem`,
  );
}

export async function makeCertificates(): Promise<TestCertificates> {
  const dir = await Deno.makeTempDir({ prefix: "kmq-certs-" });
  await selfSigned(dir, "ca");
  await selfSigned(dir, "other-ca");
  await signed(dir, "server", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n");
  await signed(dir, "kmq-client", "extendedKeyUsage=clientAuth\n");
  return {
    dir,
    ca: `${dir}/ca.pem`,
    otherCa: `${dir}/other-ca.pem`,
    serverCert: `${dir}/server.pem`,
    serverKey: `${dir}/server.key`,
    clientCert: `${dir}/kmq-client.pem`,
    clientKey: `${dir}/kmq-client.key`,
    close: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}
