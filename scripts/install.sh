#!/bin/sh
# pythond installer: one binary under three names (pythond, pysh, pyctl).
#
#   curl -fsSL <release-url>/install.sh | sh                   # from the release location
#   curl -fsSL <release-url>/install.sh | sh -s -- --prefix /opt/pythond
#   sh install.sh --from ./release/                             # air-gapped: a copied directory
#   sh install.sh --from ./pythond-0.5.0-linux-x64              # ... or one file (binary or .tar.gz)
#   sh install.sh --uninstall [--prefix DIR]
#
# Every file is checked against SHA256SUMS (taken from beside it) before anything is installed;
# a mismatch or a missing sum refuses. Nothing downloaded is ever run by a shell: the only thing
# run is the verified binary itself (`--version`, to check it works here). POSIX sh: dash,
# busybox ash and bash. Environment: PYTHOND_BASE_URL (where SHA256SUMS and the files are),
# PYTHOND_VERSION (pick one when several are listed), PYTHOND_TARGET (override detection).
set -eu

BASE_URL=${PYTHOND_BASE_URL:-https://github.com/pythond/pythond/releases/latest/download}
VERSION=${PYTHOND_VERSION:-}
FROM=""
PREFIX=""
UNINSTALL=0
WORK=""

say() { printf '%s\n' "$*"; }
die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}
cleanup() { if [ -n "$WORK" ]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

usage() {
  cat <<USAGE
usage: install.sh [--from FILE|DIR] [--prefix DIR] [--version V] [--uninstall]

  --from FILE|DIR  install from a local release file (binary or .tar.gz) or directory, with its
                   SHA256SUMS beside it (no network); default: download from \$PYTHOND_BASE_URL
                   ($BASE_URL)
  --prefix DIR     install into DIR/bin (default: ~/.local, or /usr/local as root)
  --version V      which version, when the sums list several (or \$PYTHOND_VERSION)
  --uninstall      remove what this script installed under the prefix, and nothing else
USAGE
}

while [ $# -gt 0 ]; do
  case $1 in
    --from) [ $# -ge 2 ] || die "--from needs a file or directory"; FROM=$2; shift 2 ;;
    --from=*) FROM=${1#--from=}; shift ;;
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#--prefix=}; shift ;;
    --version) [ $# -ge 2 ] || die "--version needs a version"; VERSION=$2; shift 2 ;;
    --version=*) VERSION=${1#--version=}; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

if [ -z "$PREFIX" ]; then
  if [ "$(id -u)" = 0 ]; then PREFIX=/usr/local; else PREFIX=${HOME:?HOME is not set: pass --prefix}/.local; fi
fi
BIN=$PREFIX/bin
MANIFEST=$PREFIX/share/pythond/installed

# --- uninstall: only the files recorded in the manifest, and only while they are still ours ---
if [ "$UNINSTALL" = 1 ]; then
  [ -f "$MANIFEST" ] || die "nothing installed by this script under $PREFIX ($MANIFEST not found)"
  while IFS= read -r rel; do
    p=$PREFIX/$rel
    case $rel in
      bin/pysh | bin/pyctl)
        if [ -L "$p" ] && [ "$(readlink "$p")" = pythond ]; then rm -f "$p" && say "removed $p"; fi ;;
      bin/pythond)
        if [ -f "$p" ] && [ ! -L "$p" ]; then rm -f "$p" && say "removed $p"; fi ;;
    esac
  done <"$MANIFEST"
  rm -f "$MANIFEST"
  rmdir "$PREFIX/share/pythond" 2>/dev/null || true
  say "pythond uninstalled from $PREFIX (~/.pythond, sessions' history and certificates, is kept)"
  exit 0
fi

# --- what this machine needs ---
detect_target() {
  os=$(uname -s)
  arch=$(uname -m)
  case $os in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) die "no release build for $os (Linux and macOS here; on Windows use pythond-<version>-windows-x64.exe)" ;;
  esac
  case $arch in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "no release build for the $arch CPU (x64 and arm64)" ;;
  esac
  # An x64 shell under Rosetta on Apple silicon: the native build is the better one.
  if [ "$os" = darwin ] && [ "$arch" = x64 ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
    arch=arm64
  fi
  libc=""
  if [ "$os" = linux ]; then
    # musl (Alpine): ldd says so; a glibc system may have musl's loader installed beside its own.
    if { ldd --version 2>&1 || true; } | grep -qi musl ||
      { [ ! -e /lib64/ld-linux-x86-64.so.2 ] && [ ! -e /lib/ld-linux-aarch64.so.1 ] && ls /lib/ld-musl-* >/dev/null 2>&1; }; then
      [ "$arch" = x64 ] || die "no musl build for $arch (musl: x64 only)"
      libc=-musl
    fi
  fi
  printf '%s\n' "$os-$arch$libc"
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 "$1" | sed 's/.*= *//'
  else
    die "no sha256sum, shasum or openssl to verify the download with"
  fi
}

# The name of the file for TARGET in a SHA256SUMS (one version, or $VERSION).
pick() {
  names=$(awk -v t="$2" -v v="$VERSION" '{ n = $2; sub(/^\*/, "", n)
      if (n ~ ("^pythond-.*-" t "$") && (v == "" || n == "pythond-" v "-" t)) print n }' "$1")
  [ -n "$names" ] || die "no pythond ${VERSION:+$VERSION }build for $2 in $1"
  [ "$(printf '%s\n' "$names" | wc -l)" -eq 1 ] || die "several versions for $2 in $1: pass --version ($(printf '%s' "$names" | tr '\n' ' '))"
  printf '%s\n' "$names"
}

# Refuses unless FILE's SHA-256 is the one SUMS lists for NAME.
verify() {
  want=$(awk -v n="$3" '{ m = $2; sub(/^\*/, "", m); if (m == n) print $1 }' "$2")
  [ -n "$want" ] || die "$3 has no sum in $2: refusing to install it"
  got=$(sha256 "$1")
  [ "$got" = "$want" ] || die "checksum mismatch for $3 (expected $want, got $got): refusing to install it"
}

fetch() {
  case $1 in
    https://* | file://*) ;;
    http://127.0.0.1[:/]* | http://localhost[:/]* | http://\[::1\]*) ;;
    *) die "refusing $1: only https (or a loopback http server) can be trusted to serve the sums" ;;
  esac
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL -o "$2" "$1" || die "download failed: $1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1" || die "download failed: $1"
  else
    die "neither curl nor wget found: download the release and use --from"
  fi
}

TARGET=${PYTHOND_TARGET:-$(detect_target)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pythond-install.XXXXXX")

if [ -n "$FROM" ]; then
  if [ -d "$FROM" ]; then
    SUMS=$FROM/SHA256SUMS
    [ -f "$SUMS" ] || die "no SHA256SUMS in $FROM"
    NAME=$(pick "$SUMS" "$TARGET")
    SRC=$FROM/$NAME
  elif [ -f "$FROM" ]; then
    SUMS=$(dirname -- "$FROM")/SHA256SUMS
    [ -f "$SUMS" ] || die "no SHA256SUMS beside $FROM"
    NAME=$(basename -- "$FROM")
    SRC=$FROM
  else
    die "--from $FROM: no such file or directory"
  fi
  [ -f "$SRC" ] || die "$SRC is listed in $SUMS but missing"
  cp "$SRC" "$WORK/$NAME"
else
  SUMS=$WORK/SHA256SUMS
  fetch "$BASE_URL/SHA256SUMS" "$SUMS"
  NAME=$(pick "$SUMS" "$TARGET")
  say "downloading $BASE_URL/$NAME"
  fetch "$BASE_URL/$NAME" "$WORK/$NAME"
fi

# Verify the copy we will install (not the original, which could change after the check).
verify "$WORK/$NAME" "$SUMS" "$NAME"
case $NAME in
  *.tar.gz)
    mkdir "$WORK/x"
    tar -xzf "$WORK/$NAME" -C "$WORK/x"
    NEW=$WORK/x/${NAME%.tar.gz}/pythond ;;
  *) NEW=$WORK/$NAME ;;
esac
[ -f "$NEW" ] || die "$NAME does not hold a pythond binary"
chmod 755 "$NEW"
NEWVER=$("$NEW" --version 2>&1) || die "the $TARGET binary does not run on this machine: $NEWVER"

for l in pysh pyctl; do
  if { [ -e "$BIN/$l" ] || [ -L "$BIN/$l" ]; } && ! { [ -L "$BIN/$l" ] && [ "$(readlink "$BIN/$l")" = pythond ]; }; then
    die "$BIN/$l exists and is not our link to pythond: move it away first (nothing was changed)"
  fi
done

mkdir -p "$BIN" "$PREFIX/share/pythond"
OLDVER=""
if [ -x "$BIN/pythond" ]; then OLDVER=$("$BIN/pythond" --version 2>/dev/null || true); fi
# Copy beside the target, then rename over it: the rename is atomic, and a running daemon keeps
# the old file (its inode) until `pyctl restart` starts the new one from the same path.
cp "$NEW" "$BIN/.pythond.new.$$"
chmod 755 "$BIN/.pythond.new.$$"
mv -f "$BIN/.pythond.new.$$" "$BIN/pythond"
for l in pysh pyctl; do
  rm -f "$BIN/$l"
  ln -s pythond "$BIN/$l"
done
printf '%s\n' bin/pythond bin/pysh bin/pyctl >"$MANIFEST"

if [ "$OLDVER" = "$NEWVER" ]; then
  say "reinstalled $NEWVER (the same build)"
elif [ -n "$OLDVER" ]; then
  say "upgraded $BIN/pythond: $OLDVER -> $NEWVER"
  say "a running daemon keeps the old version until: pyctl restart (sessions live on)"
else
  say "installed $NEWVER"
fi
say "  $BIN/pythond, with $BIN/pysh and $BIN/pyctl linked to it"
case ":${PATH:-}:" in
  *":$BIN:"*) ;;
  *) say "add it to your PATH (e.g. in ~/.profile):  export PATH=\"$BIN:\$PATH\"" ;;
esac
