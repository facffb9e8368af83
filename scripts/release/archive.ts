/**
 * Reproducible .tar.gz and .zip (wheel) writers: fixed mtime, owner 0, sorted by the caller.
 *
 * The binary (~100 MB) is the only large member, and it goes into both the target's .tar.gz and
 * its wheel. Compressing it costs ~3 s per target, so it is compressed ONCE into a raw deflate
 * stream ending in a sync flush (byte aligned, no final block): such streams can be concatenated
 * (as pigz does), so the .tar.gz is gzip(header pieces + that stream + the rest) and the zip
 * entry is that stream plus an empty final block (0x03 0x00).
 */
import zlib from "node:zlib";

const { Z_SYNC_FLUSH, Z_FINISH } = zlib.constants;
const crc32 = (data: Uint8Array, seed = 0): number => (zlib as unknown as { crc32(d: Uint8Array, s: number): number }).crc32(data, seed);

/** Plain bytes and their raw deflate stream ending in a sync flush (more deflate data may follow). */
export interface Deflated {
  plain: Uint8Array;
  data: Uint8Array;
}

export function deflatePiece(plain: Uint8Array): Promise<Deflated> {
  return new Promise((resolve, reject) =>
    zlib.deflateRaw(plain, { level: 6, finishFlush: Z_SYNC_FLUSH }, (err, data) =>
      err ? reject(err) : resolve({ plain, data }),
    ),
  );
}

const EMPTY_FINAL_BLOCK = new Uint8Array([0x03, 0x00]);
const enc = new TextEncoder();

export type Entry =
  | { name: string; mode: number; data: Uint8Array | Deflated }
  | { name: string; mode: number; symlink: string }
  | { name: string; mode: number; dir: true };

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

function tarHeader(name: string, mode: number, size: number, type: string, link: string, mtime: number): Uint8Array {
  if (name.length > 100) throw new Error(`tar: name too long: ${name}`);
  const h = new Uint8Array(512);
  const put = (s: string, off: number) => h.set(enc.encode(s), off);
  put(name, 0);
  put(octal(mode, 8), 100);
  put(octal(0, 8), 108);
  put(octal(0, 8), 116);
  put(octal(size, 12), 124);
  put(octal(mtime, 12), 136);
  put("        ", 148);
  put(type, 156);
  put(link, 157);
  put("ustar\u000000", 257);
  put("root", 265);
  put("root", 297);
  let sum = 0;
  for (const b of h) sum += b;
  put(octal(sum, 7) + " ", 148);
  return h;
}

const pad512 = (n: number) => new Uint8Array((512 - (n % 512)) % 512);

/** A .tar.gz of the entries, in the order given; pre-compressed members are reused as they are. */
export async function tarGz(entries: Entry[], mtime: number): Promise<Uint8Array> {
  const pieces: Deflated[] = [];
  let plain: Uint8Array[] = [];
  const flush = async () => {
    if (plain.length) pieces.push(await deflatePiece(Buffer.concat(plain)));
    plain = [];
  };
  for (const e of entries) {
    if ("dir" in e) plain.push(tarHeader(e.name, e.mode, 0, "5", "", mtime));
    else if ("symlink" in e) plain.push(tarHeader(e.name, e.mode, 0, "2", e.symlink, mtime));
    else if (e.data instanceof Uint8Array) plain.push(tarHeader(e.name, e.mode, e.data.length, "0", "", mtime), e.data, pad512(e.data.length));
    else {
      plain.push(tarHeader(e.name, e.mode, e.data.plain.length, "0", "", mtime));
      await flush();
      pieces.push(e.data);
      plain.push(pad512(e.data.plain.length));
    }
  }
  plain.push(new Uint8Array(1024)); // end of archive
  const tail = Buffer.concat(plain);
  let crc = 0;
  let size = 0;
  for (const p of [...pieces.map((p) => p.plain), tail]) {
    crc = crc32(p, crc);
    size += p.length;
  }
  const head = new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]); // no name, mtime 0, OS unix
  const trailer = new Uint8Array(8);
  const dv = new DataView(trailer.buffer);
  dv.setUint32(0, crc >>> 0, true);
  dv.setUint32(4, size >>> 0, true);
  const last = zlib.deflateRawSync(tail, { level: 6, finishFlush: Z_FINISH });
  return Buffer.concat([head, ...pieces.map((p) => p.data), last, trailer]);
}

/** MS-DOS date and time of a Unix time (zip's resolution: 2 s; 1980 at the earliest). */
function dosTime(epoch: number): [number, number] {
  const d = new Date(Math.max(epoch, 315532800) * 1000);
  const time = (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1);
  const date = ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate();
  return [time, date];
}

/** A zip (deflated members, Unix modes) of files only, in the order given. */
export async function zip(entries: Array<{ name: string; mode: number; data: Uint8Array | Deflated }>, mtime: number): Promise<Uint8Array> {
  const [time, date] = dosTime(mtime);
  const out: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const d = e.data instanceof Uint8Array ? await deflatePiece(e.data) : e.data;
    const body = Buffer.concat([d.data, EMPTY_FINAL_BLOCK]);
    const name = enc.encode(e.name);
    const crc = crc32(d.plain) >>> 0;
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(6, 0x800, true); // UTF-8 names
    local.setUint16(8, 8, true);
    local.setUint16(10, time, true);
    local.setUint16(12, date, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, body.length, true);
    local.setUint32(22, d.plain.length, true);
    local.setUint16(26, name.length, true);
    const cd = new DataView(new ArrayBuffer(46));
    cd.setUint32(0, 0x02014b50, true);
    cd.setUint16(4, (3 << 8) | 20, true); // made by Unix: the high half of the attributes is st_mode
    cd.setUint16(6, 20, true);
    cd.setUint16(8, 0x800, true);
    cd.setUint16(10, 8, true);
    cd.setUint16(12, time, true);
    cd.setUint16(14, date, true);
    cd.setUint32(16, crc, true);
    cd.setUint32(20, body.length, true);
    cd.setUint32(24, d.plain.length, true);
    cd.setUint16(28, name.length, true);
    cd.setUint32(38, ((0o100000 | e.mode) << 16) >>> 0, true);
    cd.setUint32(42, offset, true);
    out.push(new Uint8Array(local.buffer), name, body);
    central.push(new Uint8Array(cd.buffer), name);
    offset += 30 + name.length + body.length;
  }
  const cdBytes = Buffer.concat(central);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, cdBytes.length, true);
  end.setUint32(16, offset, true);
  if (offset > 0xffffffff) throw new Error("zip: over 4 GiB needs zip64");
  return Buffer.concat([...out, cdBytes, new Uint8Array(end.buffer)]);
}
