import { PythondError } from "./errors.ts";

const NAME_RE = /^[a-z0-9_-]{1,80}$/;
const WINDOWS_DEVICES = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/;

/** Session names: lowercase a-z 0-9 _ -, 1..80 chars, no Windows device names. */
export function isValidName(name: string): boolean {
  return NAME_RE.test(name) && !WINDOWS_DEVICES.test(name);
}

/** The rule, stated in every refusal so the user knows what to type instead. */
export const NAME_RULE = "lowercase a-z, 0-9, _ and -, up to 80 characters";

export function checkName(name: string): string {
  if (!isValidName(name)) throw new PythondError("invalid_name", `invalid session name (${NAME_RULE})`);
  return name;
}
