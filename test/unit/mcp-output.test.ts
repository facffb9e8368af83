/**
 * Output shaping of `pysh mcp` (src/mcp/shape.ts, cells.ts) without processes: `\r` collapse,
 * head/tail truncation with its note, byte ranges, figure markers, and the bounded buffer a
 * record keeps.
 */
import { expect, test } from "bun:test";
import { OutputBuffer } from "../../src/mcp/cells.ts";
import { byteRange, collapseCR, extractFigures, shapeOutput } from "../../src/mcp/shape.ts";

test("\\r progress updates collapse to the last state of each line", () => {
  expect(collapseCR("a\r10%\r50%\r100%\nnext")).toBe("100%\nnext");
  expect(collapseCR("50%\r")).toBe("50%"); // a bar about to be redrawn still shows its state
  expect(collapseCR("windows\r\nlines\r\n")).toBe("windows\nlines\n");
  expect(collapseCR("plain")).toBe("plain");
});

test("long output: head and tail, the full size, and where to read the rest", () => {
  const text = "H".repeat(50) + "x".repeat(1000) + "T".repeat(50);
  const shown = shapeOutput(text, { session: "s", cellId: "abc" }, 200);
  expect(shown.startsWith("H".repeat(50))).toBe(true);
  expect(shown.endsWith("T".repeat(50))).toBe(true);
  expect(shown).toContain("1100 bytes in all");
  expect(shown).toContain('read_output(session="s", cell_id="abc", offset, length)');
  expect(shapeOutput("short", { session: "s" }, 200)).toBe("short");
});

test("byte ranges of UTF-8 text", () => {
  expect(byteRange("héllo", 0, 2)).toEqual({ text: "h\uFFFD", total: 6, end: 2 }); // a split character
  expect(byteRange("héllo", 0, 3)).toEqual({ text: "hé", total: 6, end: 3 });
  expect(byteRange("héllo", 3, 100)).toEqual({ text: "llo", total: 6, end: 6 });
  expect(byteRange("abc", 10, 5)).toEqual({ text: "", total: 3, end: 3 });
});

test("figure markers become a line with the path, and the figure", () => {
  const info = { path: "/f/figure-1.png", preview: "/f/figure-1.preview.png", width: 640, height: 480 };
  const out = extractFigures(`before\n\x1b]5379;pythond-figure;${JSON.stringify(info)}\x07after\n`);
  expect(out.text).toBe("before\n[figure: /f/figure-1.png (640x480)]\nafter\n");
  expect(out.figures).toEqual([info]);
  expect(extractFigures("no figures").figures).toEqual([]);
});

test("a record's buffer keeps the first part and the latest, and says what it dropped", () => {
  const b = new OutputBuffer(100, 20);
  for (let i = 0; i < 50; i++) b.append(String(i % 10).repeat(10));
  expect(b.length).toBe(100);
  const t = b.text();
  expect(t.startsWith("0".repeat(10) + "1".repeat(10) + "\n[... 400 characters dropped here")).toBe(true);
  expect(t.endsWith("9".repeat(10))).toBe(true);
  const small = new OutputBuffer(100, 20);
  small.append("abc");
  expect(small.text()).toBe("abc");
});
