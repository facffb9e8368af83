/**
 * The baseline of the file transfer figures (bench/fleet-io.ts): a plain TLS socket copy of a file's
 * bytes over loopback, both ends in this one process, with the hub's certificate. Run as a child so
 * that it can be run with the memcpy setting the daemons give themselves (src/daemon/memcpy-tune.ts)
 * and without. Prints one JSON line: {mbps, cpu} (cpu: CPU seconds of both ends).
 *
 *   bun bench/tls-copy.ts <file> <cert.pem> <key.pem>
 */
import { readFileSync } from "node:fs";

const [file, certPath, keyPath] = process.argv.slice(2);
const bytes = readFileSync(file!);
const cert = readFileSync(certPath!, "utf8");
const key = readFileSync(keyPath!, "utf8");
const MB = 1 << 20;
let got = 0;
let done!: () => void;
const all = new Promise<void>((r) => (done = r));
const server = Bun.listen({
  hostname: "127.0.0.1",
  port: 0,
  tls: { cert, key },
  socket: {
    data: (_s, d) => {
      got += d.length;
      if (got >= bytes.length) done();
    },
  },
});
const t0 = performance.now();
const c0 = process.cpuUsage();
let off = 0;
let drain: () => void = () => {};
const s = await Bun.connect({
  hostname: "127.0.0.1",
  port: server.port,
  tls: { rejectUnauthorized: false },
  socket: { data: () => {}, drain: () => drain() },
});
while (off < bytes.length) {
  const n = s.write(bytes.subarray(off, Math.min(off + MB, bytes.length)));
  off += Math.max(n, 0);
  if (n <= 0) await new Promise<void>((r) => (drain = r));
}
await all;
const ms = performance.now() - t0;
const c = process.cpuUsage(c0);
s.end();
server.stop(true);
console.log(JSON.stringify({ mbps: bytes.length / MB / (ms / 1000), cpu: (c.user + c.system) / 1e6 }));
process.exit(0);
