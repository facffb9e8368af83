#!/bin/sh
# Part of `npm run setup`: the Debian packages the tests use besides Node/Bun and python3 --
# dash and busybox (the installer runs under both), shellcheck (the installer is checked),
# systemd (systemd-analyze verify on generated units), file (a second opinion on binary formats),
# qemu-user-static and libc6-arm64-cross (the linux-arm64 release build runs, emulated), iproute2
# (ss: a test reads a link's sent bytes from the kernel), tmux (drives `pysh attach` and
# `pysh shell` in a real terminal), zsh and fish (the completion scripts run in them).
# Installed with apt-get when missing and we are root; otherwise says what is missing: the tests
# that need them then fail with that name, they are never skipped.
set -u
[ "$(uname -s)" = Linux ] || exit 0
missing=""
for pair in dash:dash busybox:busybox shellcheck:shellcheck systemd-analyze:systemd file:file qemu-aarch64-static:qemu-user-static ss:iproute2 tmux:tmux zsh:zsh fish:fish; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
# the linux-arm64 build runs under qemu-user with Debian's arm64 C library
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || missing="$missing libc6-arm64-cross"
[ -n "$missing" ] || exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Debian packages:$missing"
  # shellcheck disable=SC2086 # $missing: one word per package
  apt-get update -q >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null ||
    echo "setup: apt-get install$missing failed: the installer and service tests will fail" >&2
else
  echo "setup: missing$missing (apt-get install them as root): the installer and service tests will fail" >&2
fi
exit 0
