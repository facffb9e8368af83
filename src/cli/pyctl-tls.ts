/** pyctl cert / trust / pin: the certificate files of ~/.pythond/tls (see src/tls). */
import { defineCommand } from "citty";
import { ensureOwnCertificate, pinServer, trustClient } from "../tls/index.ts";
import { line } from "./out.ts";

export const cert = defineCommand({
  meta: { name: "cert", description: "show (and on first use generate) this machine's TLS certificate" },
  async run() {
    const c = await ensureOwnCertificate();
    line(`cert: ${c.certPath}`);
    line(`key: ${c.keyPath}`);
    line(`fingerprint: ${c.fingerprint}`);
    line(`# as a client: copy ${c.certPath} to the server and run there: pyctl trust <cert.pem>`);
    line(`# as a server: copy ${c.certPath} to each client and run there: pyctl pin <cert.pem>`);
  },
});

export const trust = defineCommand({
  meta: { name: "trust", description: "authorize a client certificate (like authorized_keys)" },
  args: { cert: { type: "positional", description: "client cert.pem", required: true } },
  run({ args }) {
    line(`trusted client: ${trustClient(args.cert)}`);
  },
});

export const pin = defineCommand({
  meta: { name: "pin", description: "pin a server certificate (like known_hosts)" },
  args: { cert: { type: "positional", description: "server cert.pem", required: true } },
  run({ args }) {
    line(`pinned server: ${pinServer(args.cert)}`);
  },
});
