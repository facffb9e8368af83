/** pysh's streaming rule: trailing newlines stripped, then one newline (as the original's print). */
import { describe, expect, test } from "bun:test";

async function through(chunks: string[]): Promise<string> {
  const code = `
    import { OutputStream } from "${import.meta.dir}/../../src/cli/out.ts";
    const s = new OutputStream();
    for (const c of ${JSON.stringify(chunks)}) s.write(new TextEncoder().encode(c));
    s.end();`;
  const p = Bun.spawn([process.execPath, "-e", code], { stdout: "pipe" });
  return new Response(p.stdout).text();
}

describe("OutputStream", () => {
  test("cases", async () => {
    expect(await through(["a\n\n\n"])).toBe("a\n");
    expect(await through(["a\n", "\n", "b"])).toBe("a\n\nb\n");
    expect(await through([])).toBe("");
    expect(await through(["\n\n"])).toBe("");
    expect(await through(["\n\nx"])).toBe("\n\nx\n");
    expect(await through(["x", "\n", "\n"])).toBe("x\n");
  });
});
