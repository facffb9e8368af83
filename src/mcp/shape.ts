/**
 * Output that fits an agent's context: `\r` progress bars collapsed to their last state, long
 * output cut to its head and tail with the total size and how to page through the rest
 * (`read_output`), and figure markers (src/mcp/figures.py) taken out of the text.
 */

/** Limits of one reply's text, in characters (UTF-16 units; close enough to bytes for a budget). */
export const LIMITS = {
  max: Number(process.env.PYTHOND_MCP_MAX_OUTPUT || 12_000),
  head: 0.3,
};

/** Each line keeps what was written after its last `\r` (a terminal shows nothing else of it). */
export function collapseCR(text: string): string {
  if (!text.includes("\r")) return text;
  return text
    .replace(/\r\n/g, "\n")
    .split("\n")
    .map((line) => {
      const parts = line.split("\r");
      // "50%\r" (a bar about to be redrawn) still shows 50%: keep the last non-empty state.
      for (let i = parts.length - 1; i >= 0; i--) if (parts[i]) return parts[i];
      return "";
    })
    .join("\n");
}

/**
 * The text to show for a cell's output: collapsed, and cut to head + tail when too long, with a
 * note naming the full size and the tool that reads any byte range of it.
 */
export function shapeOutput(full: string, ref: { session?: string; cellId?: string; pager?: string; bytes?: number }, max = LIMITS.max): string {
  const text = collapseCR(full);
  if (text.length <= max) return text;
  const head = Math.floor(max * LIMITS.head);
  const tail = max - head;
  const bytes = ref.bytes ?? Buffer.byteLength(full);
  const where = ref.pager
    ? ref.pager
    : ref.cellId
    ? `read_output(session="${ref.session}", cell_id="${ref.cellId}", offset, length) returns any byte range of it`
    : "the cell id was not known, so it cannot be paged";
  const note =
    `\n[... output truncated: ${bytes} bytes in all (${text.length} characters after collapsing \\r updates); ` +
    `showing the first ${head} and last ${tail} characters; ${where} ...]\n`;
  return text.slice(0, head) + note + text.slice(text.length - tail);
}

/** A figure a cell showed (figures.py wrote both files). */
export interface Figure {
  path: string;
  preview: string;
  width: number;
  height: number;
}

/** `ESC ] 5379 ; pythond-figure ; {json} BEL`: an OSC sequence terminals ignore (see figures.py). */
const MARKER = /\x1b\]5379;pythond-figure;(\{[^\x07]*\})\x07/g;

/** Takes figure markers out of output: the text with `[figure: path (WxH)]` in their place, and the figures. */
export function extractFigures(text: string): { text: string; figures: Figure[] } {
  if (!text.includes("\x1b]5379;")) return { text, figures: [] };
  const figures: Figure[] = [];
  const out = text.replace(MARKER, (_m, json: string) => {
    try {
      const f = JSON.parse(json) as Figure;
      figures.push(f);
      return `[figure: ${f.path} (${f.width}x${f.height})]\n`;
    } catch {
      return "";
    }
  });
  return { text: out, figures };
}

/** Bytes [offset, offset+length) of text's UTF-8, decoded (a split character shows as U+FFFD). */
export function byteRange(text: string, offset: number, length: number): { text: string; total: number; end: number } {
  const buf = Buffer.from(text);
  const start = Math.max(0, Math.min(offset, buf.length));
  const end = Math.min(buf.length, start + Math.max(0, length));
  return { text: buf.subarray(start, end).toString("utf8"), total: buf.length, end };
}
