// subjectAltName classification (src/tls/san.ts): IP literals become raw address bytes, names
// become DNS SANs, duplicates collapse, bad values are refused with tls_bad_san.
import { describe, expect, test } from "bun:test";
import { hostname } from "node:os";
import { buildSans, ipLiteralBytes } from "../../src/tls/san.ts";

const hex = (b: Uint8Array | null) => (b ? Buffer.from(b).toString("hex") : null);

describe("ipLiteralBytes", () => {
  test.each([
    ["127.0.0.1", "7f000001"],
    ["::1", "0".repeat(31) + "1"],
    ["::", "0".repeat(32)],
    ["[::1]", "0".repeat(31) + "1"],
    ["1::", "0001" + "0".repeat(28)],
    ["2001:db8::8a2e:370:7334", "20010db80000000000008a2e03707334"],
    ["1:2:3:4:5:6:7:8", "00010002000300040005000600070008"],
    ["::ffff:192.168.1.2", "00000000000000000000ffffc0a80102"],
    ["fe80::1%eth0", "fe80" + "0".repeat(27) + "1"],
  ])("%s", (ip, want) => {
    expect(hex(ipLiteralBytes(ip))).toBe(want);
  });

  test.each(["localhost", "1.2.3", "256.1.1.1", "1:2:3", "example.com"])("%s is not an IP", (s) => {
    expect(ipLiteralBytes(s)).toBeNull();
  });
});

describe("buildSans", () => {
  test("defaults first, extras after, duplicates dropped", () => {
    const sans = buildSans(["10.0.0.5", "LOCALHOST", "0:0::1", "node.example.", "[::1]"]);
    expect(sans.map((s) => `${s.type}:${s.value}`)).toEqual(
      [
        "dns:localhost",
        "ip:127.0.0.1",
        "ip:::1",
        ...(hostname() === "localhost" ? [] : [`dns:${hostname()}`]),
        "ip:10.0.0.5",
        "dns:node.example",
      ],
    );
  });

  test("values that fit neither form are refused", () => {
    for (const bad of ["two words", "", "ünïcode.example", "a/b", "x".repeat(64) + ".example"]) {
      expect(() => buildSans([bad])).toThrow(expect.objectContaining({ code: "tls_bad_san" }));
    }
  });
});
