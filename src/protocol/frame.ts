/**
 * Text frames of the seed's protocol: the first line is the command and its space-separated
 * arguments; everything after the first "\n" is the code body, raw (never JSON-escaped).
 * A single trailing CRLF is tolerated, empty frames are ignored, and a leading `pysh`/`pyctl`
 * word is accepted (people paste CLI lines into WebSocket consoles).
 */
export interface Frame {
  cmd: string;
  args: string[];
  body: string;
}

export function parseFrame(text: string): Frame | null {
  if (text.endsWith("\r\n")) text = text.slice(0, -2);
  const nl = text.indexOf("\n");
  let head = nl < 0 ? text : text.slice(0, nl);
  const body = nl < 0 ? "" : text.slice(nl + 1);
  if (head.endsWith("\r")) head = head.slice(0, -1);
  const words = head.split(/[ \t]+/).filter((w) => w.length > 0);
  if (words[0] === "pysh" || words[0] === "pyctl") words.shift();
  if (words.length === 0) return body.trim() === "" ? null : { cmd: "", args: [], body };
  return { cmd: words[0]!, args: words.slice(1), body };
}

/** Builds a frame: command line, then the body after a newline when there is one. */
export function buildFrame(cmd: string, args: readonly string[] = [], body?: string): string {
  const head = [cmd, ...args].join(" ");
  return body === undefined ? head : `${head}\n${body}`;
}

/**
 * Paths in a frame's command line (`new --cwd`, `--python`): percent-encoded by the sender, since
 * the line is split on spaces; a receiver decodes, and a plain path (typed by hand) passes as is.
 */
export function encodePathArg(path: string): string {
  return encodeURIComponent(path);
}

export function decodePathArg(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}
