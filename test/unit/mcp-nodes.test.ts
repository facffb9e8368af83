/**
 * Pieces of the MCP node tools and the library's fleet results that need no hub: whether a byte
 * range of a file is text (a range may cut a UTF-8 character at either end), and output kept up
 * to a limit.
 */
import { expect, test } from "bun:test";
import { asText } from "../../src/mcp/nodes.ts";
import { Kept } from "../../src/client/fleet-results.ts";

const b = (s: string) => new TextEncoder().encode(s);

test("asText: text, NUL, invalid UTF-8, characters cut at a range's ends", () => {
  expect(asText(b("héllo"), false, false)).toBe("héllo");
  expect(asText(new Uint8Array([0x61, 0, 0x62]), false, false)).toBeNull();
  expect(asText(new Uint8Array([0x61, 0xff, 0x62]), false, false)).toBeNull();
  const e = b("é€😀"); // 2 + 3 + 4 bytes
  expect(asText(e.subarray(1), true, false)).toBe("€😀"); // cut inside é at the start
  expect(asText(e.subarray(0, 7), false, true)).toBe("é€"); // cut inside 😀 at the end
  expect(asText(e.subarray(3), true, true)).toBe("😀");
  // a cut is forgiven only at a range's ends, and only when the range is cut there
  expect(asText(e.subarray(1), false, false)).toBeNull();
  expect(asText(e.subarray(0, 7), false, false)).toBeNull();
  expect(asText(new Uint8Array([0x61, 0x80, 0x80, 0x80, 0x80]), true, true)).toBeNull();
});

test("Kept: keeps a prefix up to its limit, counts everything", () => {
  const k = new Kept(5);
  k.add(b("abc"));
  k.add(b("defg"));
  k.add(b("h"));
  expect(new TextDecoder().decode(k.bytes())).toBe("abcde");
  expect(k.total).toBe(8);
  const all = new Kept();
  all.add(b("x"));
  all.add(b("yz"));
  expect(new TextDecoder().decode(all.bytes())).toBe("xyz");
});
