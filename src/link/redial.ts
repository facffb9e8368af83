/**
 * Keeping one link up: the dialing side of a long-lived link (a proxy to its remote daemon; next
 * a node to its hub). From src/proxy/links.ts, where it kept a pool's idle link.
 *
 *   const r = new Redialer(dial, { baseMs, capMs, onUp, onDown })
 *   r.start()          dial now (in the background), and again whenever the link goes
 *   r.get()            the link if up; else one dial at once (a peer that is back is used
 *                      immediately), its error thrown when that fails (the redial goes on)
 *   r.current          the link if up
 *   retry()            (option) false: stop redialing after a failure (get() still dials)
 *   r.retryAfter(ms)   the peer asked us to wait (a hub under a reconnect storm): the next attempt
 *                      waits at least that long
 *   r.close()          no more dialing; closes the link
 *
 * Delays: full jitter (AWS, "Exponential Backoff And Jitter"): attempt n waits a uniformly random
 * time in [0, min(cap, base * 2^n)), so a thousand links dropped together come back spread out
 * over the window rather than in waves. The first attempt after a drop is immediate.
 */
import type { Mux } from "./mux.ts";

export interface RedialOptions {
  baseMs?: number;
  capMs?: number;
  /** A link came up (dial succeeded). */
  onUp?(link: Mux): void;
  /** A dial failed, or the link went; `error` is why. */
  onDown?(error: Error): void;
  /** Whether to go on redialing after a failure (a rejected token: no); get() dials regardless. */
  retry?(): boolean;
  /** Random in [0, 1): injectable for tests. */
  random?(): number;
}

/** Full-jitter backoff: the wait before attempt `attempt` (0: at once). */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random = Math.random): number {
  if (attempt <= 0) return 0;
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** (attempt - 1)));
}

export class Redialer {
  current?: Mux;
  private attempt = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private dialing?: Promise<Mux>;
  private notBefore = 0;
  private stopped = false;
  private started = false;

  constructor(
    private readonly dial: () => Promise<Mux>,
    private readonly opts: RedialOptions = {},
  ) {}

  start(): void {
    this.started = true;
    this.schedule();
  }

  /** The link, dialing once at once if it is down. */
  async get(): Promise<Mux> {
    if (this.current && !this.current.closed) return this.current;
    return this.dialNow();
  }

  retryAfter(ms: number): void {
    this.notBefore = Math.max(this.notBefore, Date.now() + ms);
  }

  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.current?.close("closed");
    this.current = undefined;
  }

  private dialNow(): Promise<Mux> {
    if (this.dialing) return this.dialing;
    const p = this.dial().then(
      (link) => {
        this.dialing = undefined;
        if (this.stopped) {
          link.close("closed");
          return link;
        }
        this.current = link;
        this.attempt = 0;
        this.opts.onUp?.(link);
        link.onClosed((reason) => {
          if (this.current === link) this.current = undefined;
          if (this.stopped) return;
          this.opts.onDown?.(new Error(reason));
          this.schedule();
        });
        return link;
      },
      (e: Error) => {
        this.dialing = undefined;
        this.attempt++;
        this.opts.onDown?.(e);
        this.schedule();
        throw e;
      },
    );
    this.dialing = p;
    return p;
  }

  private schedule(): void {
    if (!this.started || this.stopped || this.timer || this.dialing || (this.current && !this.current.closed)) return;
    if (this.opts.retry && !this.opts.retry()) return;
    const base = this.opts.baseMs ?? 500;
    const cap = this.opts.capMs ?? 30_000;
    const delay = Math.max(backoffDelay(this.attempt, base, cap, this.opts.random), this.notBefore - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped || (this.current && !this.current.closed)) return;
      this.dialNow().catch(() => {}); // counted and rescheduled in dialNow
    }, delay);
  }
}
