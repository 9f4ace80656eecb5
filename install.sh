#!/bin/sh
# Installs the kmq binary for this machine from a release:
#
#   curl -fsSL https://github.com/kmq-cli/kmq/releases/latest/download/install.sh | sh
#
# It downloads SHA256SUMS and this platform's archive, refuses the archive unless its SHA-256 is
# the one listed, and puts `kmq` into $KMQ_INSTALL_DIR (default ~/.local/bin). Nothing is
# installed unless every step succeeded.
#
#   KMQ_DOWNLOAD_URL  where SHA256SUMS and the archives are
#                     (default https://github.com/kmq-cli/kmq/releases/latest/download)
#   KMQ_INSTALL_DIR   where kmq goes (default ~/.local/bin)
#   KMQ_MAN_DIR       where the manual page kmq.1 goes (default: the man1 folder of the share/man
#                     beside the install dir, e.g. ~/.local/share/man/man1, when that share/man exists)
set -eu

base=${KMQ_DOWNLOAD_URL:-https://github.com/kmq-cli/kmq/releases/latest/download}
dir=${KMQ_INSTALL_DIR:-$HOME/.local/bin}

fail() {
  echo "kmq install: $*" >&2
  exit 1
}

target() {
  os=$(uname -s)
  arch=$(uname -m)
  case "$os" in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) fail "no kmq build for $os/$arch (there are linux, darwin and windows x64/arm64 builds); build it from source: https://github.com/kmq-cli/kmq#install" ;;
  esac
  case "$arch" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) fail "no kmq build for $os/$arch (there are x64 and arm64 builds); build it from source: https://github.com/kmq-cli/kmq#install" ;;
  esac
  # Alpine and other musl systems take the musl build where there is one
  if [ "$os-$arch" = linux-x64 ] && ldd --version 2>&1 | grep -qi musl; then
    echo linux-x64-musl
  else
    echo "$os-$arch"
  fi
}

fetch() { # URL FILE
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1"
  else
    fail "needs curl or wget to download"
  fi
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d ' ' -f 1
  else
    fail "needs sha256sum or shasum to verify the download"
  fi
}

install_man() { # FILE: the manual page, where a man directory exists (a failure here is only said)
  [ -f "$1" ] || return 0
  share=$(dirname "$dir")/share/man
  man_dir=${KMQ_MAN_DIR:-$share/man1}
  if [ -z "${KMQ_MAN_DIR:-}" ] && [ ! -d "$share" ]; then
    echo "no man directory at $share: 'kmq man > FILE' writes the manual page (or set KMQ_MAN_DIR)"
    return 0
  fi
  if mkdir -p "$man_dir" && cp "$1" "$man_dir/kmq.1"; then
    echo "installed the manual page to $man_dir/kmq.1 (man kmq)"
  else
    echo "could not write $man_dir/kmq.1: 'kmq man > FILE' writes the manual page"
  fi
}

main() {
  platform=$(target)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT INT TERM
  fetch "$base/SHA256SUMS" "$tmp/SHA256SUMS" || fail "could not download $base/SHA256SUMS"
  # the list names each archive with its version: kmq-<version>-<platform>.tar.gz
  line=$(grep " kmq-[^ ]*-$platform\.tar\.gz\$" "$tmp/SHA256SUMS" | head -n 1)
  [ -n "$line" ] || fail "no $platform archive listed in $base/SHA256SUMS"
  want=${line%% *}
  name=${line##* }
  fetch "$base/$name" "$tmp/$name" || fail "could not download $base/$name"
  got=$(sha256 "$tmp/$name")
  [ "$got" = "$want" ] || fail "checksum mismatch for $name (expected $want, got $got): nothing installed"
  tar -xzf "$tmp/$name" -C "$tmp" || fail "could not unpack $name: nothing installed"
  folder=${name%.tar.gz}
  [ -f "$tmp/$folder/kmq" ] || fail "$name holds no $folder/kmq: nothing installed"
  mkdir -p "$dir" || fail "cannot create $dir (set KMQ_INSTALL_DIR)"
  # copy beside the target, then rename: a running or half-copied kmq is never left behind
  cp "$tmp/$folder/kmq" "$dir/.kmq.$$" && chmod 755 "$dir/.kmq.$$" && mv -f "$dir/.kmq.$$" "$dir/kmq" ||
    { rm -f "$dir/.kmq.$$"; fail "cannot write to $dir (set KMQ_INSTALL_DIR)"; }
  echo "installed ${folder%-"$platform"} to $dir/kmq"
  install_man "$tmp/$folder/kmq.1"
  case ":$PATH:" in
    *":$dir:"*) ;;
    *) echo "$dir is not on your PATH: add  export PATH=\"$dir:\$PATH\"  to your shell's profile" ;;
  esac
}

main
