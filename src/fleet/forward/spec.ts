/**
 * `pysh forward <node> [BIND:]LOCAL_PORT:HOST:PORT`, spelled as `ssh -L`: IPv6 addresses in
 * brackets (`[::1]:8080:[::1]:80`), the bind address defaulting to 127.0.0.1 (only this machine
 * can use the tunnel unless asked otherwise), `*` or an empty bind for every interface.
 */
import { PythondError } from "../../protocol/errors.ts";

export interface ForwardSpec {
  bind: string;
  localPort: number;
  host: string;
  port: number;
}

const USAGE = "forward spec is [BIND:]LOCAL_PORT:HOST:PORT (e.g. 8888:localhost:8888)";

/** Splits on colons outside brackets; brackets are removed from the parts. */
function split(s: string): string[] {
  const parts: string[] = [];
  let cur = "";
  let depth = 0;
  for (const ch of s) {
    if (ch === "[") depth++;
    else if (ch === "]") depth--;
    else if (ch === ":" && depth === 0) {
      parts.push(cur);
      cur = "";
      continue;
    }
    if (depth < 0 || depth > 1) throw new PythondError("usage", `${USAGE}: unbalanced brackets in '${s}'`);
    if (ch !== "[" && ch !== "]") cur += ch;
  }
  if (depth !== 0) throw new PythondError("usage", `${USAGE}: unbalanced brackets in '${s}'`);
  parts.push(cur);
  return parts;
}

function port(s: string, what: string, zeroOk = false): number {
  const n = /^\d{1,5}$/.test(s) ? Number(s) : NaN;
  if (!(n >= (zeroOk ? 0 : 1) && n <= 65535)) throw new PythondError("usage", `${USAGE}: bad ${what} '${s}'`);
  return n;
}

export function parseForwardSpec(s: string): ForwardSpec {
  const parts = split(s);
  if (parts.length !== 3 && parts.length !== 4) throw new PythondError("usage", `${USAGE}: got '${s}'`);
  const [bind, lp, host, p] = parts.length === 4 ? parts : ["127.0.0.1", ...parts];
  if (!host) throw new PythondError("usage", `${USAGE}: empty HOST in '${s}'`);
  if (/[\s/]/.test(host)) throw new PythondError("usage", `${USAGE}: bad HOST '${host}'`);
  return {
    bind: bind === "" || bind === "*" ? "0.0.0.0" : bind!,
    localPort: port(lp!, "LOCAL_PORT", true),
    host: host!,
    port: port(p!, "PORT"),
  };
}
