/**
 * Remote access end to end (issue 7): a daemon with a TLS listener on a loopback port 0 and
 * pinned clients on "other machines" (private HOMEs), the original's clients, every way of being
 * refused (each with its clear error and an access-log line without secrets), mTLS that changes
 * while the daemon runs, plain TCP on loopback, the local TCP mode, and --token-file.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, statSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { exec, makeEnv, PYCTL, PYSH, until } from "./harness.ts";
import { accessLog, accessLogWith, ClientMachine, rawTls, startListening, type Listening } from "./remote-harness.ts";

const TLS_ARGS = ["--listen", "127.0.0.1:0", "--tls", "--show-token"];

let srv: Listening;
let client: ClientMachine;
beforeAll(async () => {
  srv = await startListening(TLS_ARGS);
  client = new ClientMachine({ port: srv.port, token: srv.token });
  expect((await client.pyctl(["pin", srv.certPath])).stdout).toBe(`pinned server: ${srv.fingerprint}\n`);
});
afterAll(async () => {
  client?.[Symbol.dispose]();
  await srv?.d[Symbol.asyncDispose]();
});

describe("a TLS daemon and a pinned client", () => {
  test("--show-token prints the token and the fingerprint first; the log says where it listens", () => {
    const lines = srv.d.log.text.split("\n");
    expect(lines[0]).toBe(`token=${srv.token}`);
    expect(lines[1]).toBe(`fingerprint: ${srv.fingerprint}`);
    expect(srv.token).toMatch(/^[0-9a-f]{64}$/);
    expect(srv.d.log.text).toContain(`pythond: listening on tls://127.0.0.1:${srv.port}\n`);
  });

  test("the command set works remotely", async () => {
    expect((await client.pysh(["new", "work"])).stdout).toMatch(/^OK work pid=\d+\n$/);
    expect(await client.pysh(["run", "work", "x = 6 * 7"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await client.pysh(["run", "work", "print('a'); x"])).stdout).toBe("a\n42\n");
    const bad = await client.pysh(["run", "work", "1/0"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toStartWith("ERR execution failed\n");
    expect(bad.stderr).toContain("ZeroDivisionError");

    const fired = JSON.parse((await client.pysh(["fire", "work", "import time; time.sleep(0.2); y = x + 1"])).stdout);
    expect(fired.status).toBe("fired");
    const waited = await client.pysh(["wait", "work", fired.cell_id]);
    expect(waited.code).toBe(0);
    expect(JSON.parse((await client.pysh(["poll", "work", fired.cell_id])).stdout).status).toBe("done");
    const forked = JSON.parse((await client.pysh(["fork", "work", "z = y * 2"])).stdout);
    expect(forked.status).toBe("forked");
    expect((await client.pysh(["wait", "work", forked.cell_id])).code).toBe(0);
    expect((await client.pysh(["run", "work", "z"])).stdout).toBe("86\n");

    expect(JSON.parse((await client.pysh(["vars", "work"])).stdout).vars).toEqual(expect.arrayContaining(["x", "y", "z"]));
    expect(JSON.parse((await client.pysh(["status", "work"])).stdout).state).toBe("idle");
    expect(JSON.parse((await client.pysh(["complete", "work", "tim"])).stdout).matches).toContain("time");
    expect((await client.pysh(["ls"])).stdout).toMatch(/^ {2}work: alive pid=\d+/);
    expect((await client.pysh(["int", "work"])).stdout).toBe("OK no running cells in work\n");
  });

  test("int interrupts a remote run", async () => {
    const running = client.pysh(["run", "work", "import time; time.sleep(60)"]);
    await until(async () => JSON.parse((await client.pysh(["status", "work"])).stdout).state === "running", "the cell to run");
    expect((await client.pysh(["int", "work"])).code).toBe(0);
    const r = await running;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("KeyboardInterrupt");
  });

  test("output streams through the TLS bridge without a cap (4 MB)", async () => {
    const r = await client.pysh(["run", "work", "print('x' * 4_000_000)"]);
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(4_000_001);
  });

  test("pyctl status names the endpoint", async () => {
    const st = await client.pyctl(["status"]);
    expect(st.stdout).toStartWith(`endpoint: 127.0.0.1:${srv.port} tls\nalive: True\npid: ${srv.d.pid}\n`);
    const local = await srv.d.pyctl(["status"]);
    expect(local.stdout).toContain(`listen: tls://127.0.0.1:${srv.port}\n`);
  });

  test("the access log has real peer addresses, auth events, and no token or code", async () => {
    const log = await accessLogWith(srv.d, /event=command conn_id=\d+ peer=127\.0\.0\.1:\d+ cmd=run session=work/);
    expect(log).toMatch(/event=auth conn_id=(\d+) peer=127\.0\.0\.1:\d+ .*status=ok .*method=token/);
    const conn = /event=auth conn_id=(\d+) peer=(127\.0\.0\.1:\d+) .*status=ok/.exec(log)!;
    expect(log).toContain(`event=connect conn_id=${conn[1]} peer=${conn[2]} `);
    expect(log).toMatch(/event=command conn_id=\d+ peer=127\.0\.0\.1:\d+ cmd=run session=work/);
    expect(log).not.toContain(srv.token);
    expect(log).not.toContain("6 * 7");
    expect(log).not.toContain("6%20*%207");
  });
});

describe("the original's clients and certificates", () => {
  // A client of pythond 0.4: Python's ssl with the server's cert.pem as its only CA (hostname
  // checked), a hand-made WebSocket upgrade with the Bearer token and subprotocol pythond.0.4.
  const pyClient = `
import base64, os, socket, ssl, struct, sys
port, cafile, token, code = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET / HTTP/1.1\\r\\nHost: localhost:{port}\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
           f"Sec-WebSocket-Key: {key}\\r\\nSec-WebSocket-Version: 13\\r\\nSec-WebSocket-Protocol: pythond.0.4\\r\\n"
           f"Authorization: Bearer {token}\\r\\n\\r\\n").encode())
buf = b""
while b"\\r\\n\\r\\n" not in buf:
    buf += s.recv(4096)
head, buf = buf.split(b"\\r\\n\\r\\n", 1)
assert head.startswith(b"HTTP/1.1 101"), head
def need(n):
    global buf
    while len(buf) < n:
        chunk = s.recv(65536)
        if not chunk: raise EOFError
        buf += chunk
    out, buf = buf[:n], buf[n:]
    return out
def frame():
    b0, b1 = need(2)
    n = b1 & 0x7f
    if n == 126: n = struct.unpack(">H", need(2))[0]
    elif n == 127: n = struct.unpack(">Q", need(8))[0]
    return b0 & 0x0f, need(n)
payload = code.encode()
mask = os.urandom(4)
hdr = bytes([0x81, 0x80 | len(payload)]) if len(payload) < 126 else bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(payload))
s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
op, data = frame()
print(op, data.decode())
if data.startswith(b"ERR"):
    op, data = frame()
    print(op, struct.unpack(">H", data[:2])[0])
`;
  let script: string;
  beforeAll(() => {
    script = join(client.e.dir, "client04.py");
    writeFileSync(script, pyClient);
  });

  test("a 0.4 client that pinned our cert.pem (hostname checked) runs code", async () => {
    await client.pysh(["run", "work", "x = 42"]);
    const r = await exec(["python3", script, String(srv.port), srv.certPath, srv.token, "run work\nx + 1"], client.e);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("1 43\n");
  });

  test("a 0.4 client with a bad token gets the text frame `ERR auth failed`, then close 1008", async () => {
    const r = await exec(["python3", script, String(srv.port), srv.certPath, "nope", "ls"], client.e);
    expect(r.stdout).toBe("1 ERR auth failed\n8 1008\n");
  });

  test("our client talks to a daemon that presents a certificate made like the original's", async () => {
    // RSA, traditional key format, no basicConstraints: what Python's cryptography recipe makes.
    const e = makeEnv();
    const tlsDir = join(e.home, ".pythond", "tls");
    mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
    const gen = `
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pythond")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256()))
open(sys.argv[1] + "/cert.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(sys.argv[1] + "/key.pem", "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
`;
    const g = await exec(["python3", "-c", gen, tlsDir], e);
    expect(g.stderr).toBe("");
    const old = await startListening(TLS_ARGS, e);
    try {
      using c = new ClientMachine({ port: old.port, token: old.token });
      expect((await c.pyctl(["pin", old.certPath])).stdout).toBe(`pinned server: ${old.fingerprint}\n`);
      expect((await c.pysh(["new", "w"])).code).toBe(0);
      expect((await c.pysh(["run", "w", "2 + 2"])).stdout).toBe("4\n");
    } finally {
      await old.d[Symbol.asyncDispose]();
    }
  });
});

describe("refusals: each a clear error, and an access-log line without secrets", () => {
  const lastAuth = (d: Listening["d"]) => accessLog(d).split("\n").filter((l) => l.includes("event=auth")).at(-1) ?? "";

  test("nothing pinned: says which pyctl pin to run, and what the server presents", async () => {
    using c = new ClientMachine({ port: srv.port, token: srv.token });
    const r = await c.pysh(["ls"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ERR no server certificate pinned, so 127.0.0.1:${srv.port} cannot be verified`);
    expect(r.stderr).toContain("run: pyctl pin <cert.pem>");
    expect(r.stderr).toContain(`the server presents ${srv.fingerprint}`);
    await until(() => /reason=closed_before_request/.test(lastAuth(srv.d)), "the probe's log line");
  });

  test("wrong pin: both fingerprints shown", async () => {
    using c = new ClientMachine({ port: srv.port, token: srv.token });
    await c.pyctl(["cert"]);
    const other = (await c.pyctl(["pin", c.certPath()])).stdout.replace("pinned server: ", "").trim();
    const r = await c.pysh(["ls"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ERR server certificate mismatch for 127.0.0.1:${srv.port}: it presents ${srv.fingerprint}, pinned: ${other}`);
    await until(() => /reason=tls_handshake_failed/.test(accessLog(srv.d)), "the handshake failure line");
  });

  test("wrong token", async () => {
    using c = new ClientMachine({ port: srv.port, token: "wrong-token-0123456789" });
    await c.pyctl(["pin", srv.certPath]);
    const r = await c.pysh(["ls"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith(`ERR auth failed: 127.0.0.1:${srv.port} rejected the token in PYTHOND_TOKEN`);
    await until(() => /reason=bad_token/.test(lastAuth(srv.d)), "the bad token line");
    expect(accessLog(srv.d)).not.toContain("wrong-token-0123456789");
    const none = await c.pysh(["ls"], { PYTHOND_TOKEN: "" });
    expect(none.stderr).toStartWith("ERR PYTHOND_TOKEN is not set");
  });

  test("plain client to the TLS port", async () => {
    const r = await client.pysh(["ls"], { PYTHOND_TLS: "0" });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`ERR 127.0.0.1:${srv.port} speaks TLS: set PYTHOND_TLS=1 (connect --tls for a proxy) and pin its certificate\n`);
    await until(() => /reason=tls_handshake_failed detail=EPROTO/.test(accessLog(srv.d)), "the failed handshake line");
  });

  test("plain TCP on loopback (token, no TLS); a TLS client there is told", async () => {
    const plain = await startListening(["--listen", "127.0.0.1:0", "--show-token"], makeEnv(), "tcp");
    try {
      using c = new ClientMachine({ port: plain.port, token: plain.token, tls: false });
      expect(plain.d.log.text).toContain("(plain TCP, loopback only)");
      expect((await c.pysh(["ls"])).stdout).toBe("(no sessions)\n");
      const r = await c.pysh(["ls"], { PYTHOND_TLS: "1" });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("no TLS server answered there: is it down, or a plain listener? then unset PYTHOND_TLS");
      await until(() => /detail=tls_to_plain_listener/.test(accessLog(plain.d)), "the plain listener's log line");
      await c.pyctl(["cert"]);
      await c.pyctl(["pin", c.certPath()]);
      const r2 = await c.pysh(["ls"], { PYTHOND_TLS: "1" });
      expect(r2.stderr).toBe(`ERR 127.0.0.1:${plain.port} does not speak TLS (a plain TCP listener): unset PYTHOND_TLS (connect without --tls)\n`);
    } finally {
      await plain.d[Symbol.asyncDispose]();
    }
  });

  test("connection refused, and a timeout", async () => {
    const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }); // accepts, never answers
    const closed = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const closedPort = closed.port;
    closed.stop(true);
    try {
      const refused = await client.pysh(["ls"], { PYTHOND_HOST: `127.0.0.1:${closedPort}` });
      expect(refused.stderr).toBe(`ERR connection refused by 127.0.0.1:${closedPort} (no daemon listening there?)\n`);
      const slow = await client.pysh(["ls"], { PYTHOND_HOST: `127.0.0.1:${l.port}`, PYTHOND_CONNECT_TIMEOUT: "0.5" });
      expect(slow.code).toBe(1);
      expect(slow.stderr).toStartWith(`ERR timed out after 0.5s connecting to 127.0.0.1:${l.port}`);
    } finally {
      l.stop(true);
    }
  });
});

describe("mTLS: once a client is trusted, a trusted certificate and the token", () => {
  test("trusting takes effect at once, keeps sessions and connections; the others are refused clearly", async () => {
    // A connection made before any client is trusted (token only), kept open throughout.
    const early = await rawTls(srv.port, { token: srv.token, ca: readFileSync(srv.certPath, "utf8") });
    expect(await early.ask("ls")).toContain("work: alive");

    using trustedMachine = new ClientMachine({ port: srv.port, token: srv.token });
    using noCert = new ClientMachine({ port: srv.port, token: srv.token });
    using untrusted = new ClientMachine({ port: srv.port, token: srv.token });
    for (const m of [trustedMachine, noCert, untrusted]) await m.pyctl(["pin", srv.certPath]);
    await trustedMachine.pyctl(["cert"]);
    const fpLine = (await untrusted.pyctl(["cert"])).stdout.match(/fingerprint: (\S+)/)![1]!;

    const t = await srv.d.pyctl(["trust", trustedMachine.certPath()]); // the daemon keeps running
    expect(t.stdout).toMatch(/^trusted client: [0-9A-F:]{95}\n$/);

    expect((await trustedMachine.pysh(["run", "work", "x"])).stdout).toBe("42\n"); // the session survived
    const missing = await noCert.pysh(["ls"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`ERR auth failed: 127.0.0.1:${srv.port} requires a trusted client certificate and this machine has none`);
    expect(missing.stderr).toContain("pyctl trust <cert.pem>");
    const wrong = await untrusted.pysh(["ls"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`does not trust this machine's client certificate ${fpLine}`);
    const badToken = await trustedMachine.pysh(["ls"], { PYTHOND_TOKEN: "not-the-token-at-all" });
    expect(badToken.stderr).toStartWith("ERR auth failed:");

    expect(await early.ask("ls")).toContain("work: alive"); // not dropped
    early.close();

    const log = await accessLogWith(srv.d, /reason=client_cert_untrusted/);
    expect(log).toMatch(/event=auth .*status=ok .*method=token_mtls client_cert=[0-9a-f]{16}/);
    expect(log).toContain("reason=client_cert_missing");
    expect(log).toContain(`reason=client_cert_untrusted client_cert=${fpLine.replaceAll(":", "").slice(0, 16).toLowerCase()}`);
    expect(log).not.toContain(srv.token);
  });

  test("a CA certificate is refused by trust", async () => {
    const dir = client.e.dir;
    const r = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-keyout", join(dir, "ca.key"), "-out", join(dir, "ca.pem"), "-days", "1"],
      { stderr: "pipe" },
    );
    expect(r.exitCode).toBe(0);
    const t = await srv.d.pyctl(["trust", join(dir, "ca.pem")]);
    expect(t.code).toBe(1);
    expect(t.stderr).toContain("refusing a CA certificate (basicConstraints CA:TRUE)");
  });
});

describe("token file and local TCP mode", () => {
  test("--token-file keeps the token across restarts (0600); the token never reaches the log", async () => {
    const e = makeEnv();
    const tokenFile = join(e.dir, "secret", "token");
    const first = await startListening(["--listen", "127.0.0.1:0", "--token-file", tokenFile], e, "tcp");
    const token = readFileSync(tokenFile, "utf8").trim();
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(first.d.log.text).toContain(`token written to ${tokenFile}`);
    expect(first.d.log.text).not.toContain(token);
    first.d.proc.kill("SIGKILL");
    await first.d.proc.exited;
    const second = await startListening(["--listen", "127.0.0.1:0", "--token-file", tokenFile], e, "tcp");
    try {
      expect(second.d.log.text).toContain(`token read from ${tokenFile}`);
      using c = new ClientMachine({ port: second.port, token, tls: false });
      expect((await c.pysh(["ls"])).code).toBe(0);
    } finally {
      await second.d[Symbol.asyncDispose]();
    }
  });

  test("flags that need --listen are refused without it", async () => {
    const e = makeEnv();
    const r = await exec([PYCTL, "start", "--tls"], e);
    expect(r).toMatchObject({ code: 1, stderr: "ERR --tls only apply with --listen HOST:PORT\n" });
  });

  test("local TCP mode: loopback TCP + token + daemon.json {port, token, pid} 0600", async () => {
    const e = makeEnv();
    e.env.PYTHOND_LOCAL_TCP = "1";
    e.env.PYTHOND_PORT = "0";
    const d = await startListening([], e, "tcp");
    try {
      const path = join(e.dir, "run", "pythond", "daemon.json");
      const info = JSON.parse(readFileSync(path, "utf8"));
      expect(info).toEqual({ port: d.port, token: expect.stringMatching(/^[0-9a-f]{64}$/), pid: d.d.pid });
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect((await exec([PYSH, "new", "w"], e)).code).toBe(0);
      expect((await exec([PYSH, "run", "w", "1 + 1"], e)).stdout).toBe("2\n");
      expect((await exec([PYCTL, "status"], e)).stdout).toStartWith(`endpoint: 127.0.0.1:${d.port}\nalive: True\npid: ${d.d.pid}\n`);
      // it went over TCP: the access log shows a loopback peer
      await accessLogWith(d.d, /event=command conn_id=\d+ peer=127\.0\.0\.1:\d+ cmd=run/);
      expect(accessLog(d.d)).not.toContain(info.token);
      expect((await exec([PYCTL, "stop"], e)).stdout).toBe("OK stopping daemon\n"); // over TCP, a local caller
      await d.d.proc.exited;
      expect(existsSync(path)).toBe(false);
      const gone = await exec([PYSH, "ls"], e);
      expect(gone.stderr).toStartWith("ERR no daemon (no ");
    } finally {
      await d.d[Symbol.asyncDispose]();
    }
  });
});
