/**
 * Reads what a built executable is from its own headers (no `file` command needed): ELF, Mach-O
 * or PE; the CPU; for ELF the program interpreter (glibc or musl) and the newest glibc symbol
 * version it needs; for Mach-O the minimum macOS and whether it carries a code signature (arm64
 * macOS refuses unsigned code; Bun signs ad hoc when cross-compiling). Used by the release (the
 * wheel tags come from here) and by the test that checks every target.
 */

export interface BinaryInfo {
  format: "elf" | "macho" | "pe";
  arch: "x64" | "arm64" | `other:${number}`;
  /** ELF: PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2 or /lib/ld-musl-x86_64.so.1 */
  interpreter?: string;
  /** ELF: newest GLIBC_x.y required from libc.so.6, as [x, y] */
  glibc?: [number, number];
  /** Mach-O: LC_BUILD_VERSION minos as [major, minor] */
  macosMin?: [number, number];
  codeSignature?: boolean;
  /** PE: 3 = console subsystem */
  peSubsystem?: number;
}

function cstr(b: Uint8Array, off: number): string {
  let end = off;
  while (end < b.length && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(off, end));
}

function elf(b: Uint8Array, v: DataView): BinaryInfo {
  if (b[4] !== 2 || b[5] !== 1) throw new Error("ELF: only 64-bit little-endian is expected");
  const machine = v.getUint16(18, true);
  const arch = machine === 62 ? "x64" : machine === 183 ? "arm64" : (`other:${machine}` as const);
  const info: BinaryInfo = { format: "elf", arch };
  const phoff = Number(v.getBigUint64(32, true));
  const shoff = Number(v.getBigUint64(40, true));
  const phentsize = v.getUint16(54, true), phnum = v.getUint16(56, true);
  const shentsize = v.getUint16(58, true), shnum = v.getUint16(60, true);
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (v.getUint32(p, true) === 3 /* PT_INTERP */) info.interpreter = cstr(b, Number(v.getBigUint64(p + 8, true)));
  }
  // .gnu.version_r (SHT_GNU_verneed) names, through its linked string table, the versions needed.
  for (let i = 0; i < shnum; i++) {
    const s = shoff + i * shentsize;
    if (v.getUint32(s + 4, true) !== 0x6ffffffe) continue;
    const off = Number(v.getBigUint64(s + 24, true));
    const link = v.getUint32(s + 40, true);
    const strOff = Number(v.getBigUint64(shoff + link * shentsize + 24, true));
    let need = off;
    for (;;) {
      const file = cstr(b, strOff + v.getUint32(need + 4, true));
      let aux = need + v.getUint32(need + 8, true);
      for (let n = v.getUint16(need + 2, true); n > 0; n--) {
        const m = /^GLIBC_(\d+)\.(\d+)/.exec(cstr(b, strOff + v.getUint32(aux + 8, true)));
        if (file === "libc.so.6" && m) {
          const ver: [number, number] = [Number(m[1]), Number(m[2])];
          if (!info.glibc || ver[0] > info.glibc[0] || (ver[0] === info.glibc[0] && ver[1] > info.glibc[1])) info.glibc = ver;
        }
        const next = v.getUint32(aux + 12, true);
        if (!next) break;
        aux += next;
      }
      const next = v.getUint32(need + 12, true);
      if (!next) break;
      need += next;
    }
  }
  return info;
}

function macho(v: DataView): BinaryInfo {
  const cpu = v.getUint32(4, true);
  const arch = cpu === 0x01000007 ? "x64" : cpu === 0x0100000c ? "arm64" : (`other:${cpu}` as const);
  const info: BinaryInfo = { format: "macho", arch, codeSignature: false };
  const ncmds = v.getUint32(16, true);
  let off = 32;
  for (let i = 0; i < ncmds; i++) {
    const cmd = v.getUint32(off, true), size = v.getUint32(off + 4, true);
    if (cmd === 0x32 /* LC_BUILD_VERSION */) {
      const minos = v.getUint32(off + 12, true);
      info.macosMin = [minos >>> 16, (minos >>> 8) & 0xff];
    }
    if (cmd === 0x1d /* LC_CODE_SIGNATURE */) info.codeSignature = true;
    off += size;
  }
  return info;
}

function pe(v: DataView): BinaryInfo {
  const peOff = v.getUint32(0x3c, true);
  if (v.getUint32(peOff, true) !== 0x00004550) throw new Error("PE: no PE\\0\\0 signature");
  const machine = v.getUint16(peOff + 4, true);
  const arch = machine === 0x8664 ? "x64" : machine === 0xaa64 ? "arm64" : (`other:${machine}` as const);
  const opt = peOff + 24;
  if (v.getUint16(opt, true) !== 0x20b) throw new Error("PE: not PE32+");
  return { format: "pe", arch, peSubsystem: v.getUint16(opt + 68, true) };
}

export function inspectBinary(b: Uint8Array): BinaryInfo {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46) return elf(b, v);
  if (v.getUint32(0, true) === 0xfeedfacf) return macho(v);
  if (b[0] === 0x4d && b[1] === 0x5a) return pe(v);
  throw new Error("not an ELF, Mach-O (64-bit) or PE executable");
}

/** The platform tag of a wheel carrying this binary, from what it really needs. */
export function wheelPlatform(info: BinaryInfo): string {
  const cpu = info.arch === "x64" ? "x86_64" : info.arch === "arm64" ? (info.format === "macho" ? "arm64" : "aarch64") : null;
  if (!cpu) throw new Error(`no wheel tag for ${info.arch}`);
  if (info.format === "macho") {
    const [maj, min] = info.macosMin ?? [11, 0];
    return `macosx_${maj}_${min}_${cpu}`;
  }
  if (info.format === "elf" && info.interpreter?.includes("musl")) return `musllinux_1_2_${cpu}`;
  if (info.format === "elf" && info.glibc) return `manylinux_${info.glibc[0]}_${info.glibc[1]}_${cpu}`;
  throw new Error("no wheel tag for this binary");
}
