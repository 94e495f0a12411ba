#!/usr/bin/env bash
# `make install` / `make uninstall`: svp into PREFIX (default ~/.local), where each tool looks:
#   $PREFIX/bin/svp                                      the single binary (dist/svp)
#   $PREFIX/share/man/man1/svp.1                         man svp (man-db finds it beside bin/ on PATH)
#   $PREFIX/share/bash-completion/completions/svp        bash-completion loads it on first use
#   $PREFIX/share/zsh/site-functions/_svp                zsh, when that directory is in $fpath
#   $PREFIX/share/fish/vendor_completions.d/svp.fish     fish
#   $PREFIX/share/systemd/user/svp.service               systemctl --user (ExecStart= is this svp)
# The man page and the completion scripts are written by the installed binary itself
# (`svp __man`, `svp completion SHELL`), so they describe exactly the commands it has.
# Install records what it created (files, and directories that did not exist) in
# $PREFIX/share/svp/installed; uninstall removes exactly that, and nothing else.
# Usage: scripts/install.sh install|uninstall PREFIX [BINARY]   (DESTDIR: staging root, as usual)
set -euo pipefail

action=${1:-}
prefix=${2:-}
binary=${3:-dist/svp}
case $action in install | uninstall) ;; *) echo "usage: $0 install|uninstall PREFIX [BINARY]" >&2; exit 2 ;; esac
[ -n "$prefix" ] || { echo "svp $action: PREFIX is empty" >&2; exit 2; }
[[ $prefix == /* ]] || prefix="$PWD/$prefix"
# systemd's ExecStart= and the completion scripts take the path unquoted.
[[ $prefix =~ [[:space:]] ]] && { echo "svp $action: PREFIX must not contain blanks: \"$prefix\"" >&2; exit 2; }
root="${DESTDIR:-}$prefix"

BIN=bin/svp
MAN=share/man/man1/svp.1
BASH=share/bash-completion/completions/svp
ZSH=share/zsh/site-functions/_svp
FISH=share/fish/vendor_completions.d/svp.fish
UNIT=share/systemd/user/svp.service
MANIFEST=share/svp/installed
FILES=("$BIN" "$MAN" "$BASH" "$ZSH" "$FISH" "$UNIT")

if [ "$action" = uninstall ]; then
  if [ ! -f "$root/$MANIFEST" ]; then
    # Installed by hand or by an older svp: the known files only (no directories).
    removed=0
    for f in "${FILES[@]}"; do [ -e "$root/$f" ] && { rm -f "$root/$f"; removed=$((removed + 1)); }; done
    echo "svp uninstall: no record of an installation in $root ($MANIFEST); removed $removed known file(s)"
    exit 0
  fi
  mapfile -t entries <"$root/$MANIFEST"
  files=0 dirs=0
  for e in "${entries[@]}"; do
    case $e in f\ *) rm -f "$root/${e#f }" && files=$((files + 1)) ;; esac
  done
  rm -f "$root/$MANIFEST"
  # Directories it created, deepest first, if nothing else has been put in them since.
  for ((i = ${#entries[@]} - 1; i >= 0; i--)); do
    e=${entries[i]}
    case $e in d\ .) rmdir "$root" 2>/dev/null && dirs=$((dirs + 1)) || true ;; d\ *) rmdir "$root/${e#d }" 2>/dev/null && dirs=$((dirs + 1)) || true ;; esac
  done
  echo "svp uninstall: removed $files files and $dirs directories from $root"
  exit 0
fi

[ -x "$binary" ] || { echo "svp install: $binary is missing (make dist builds it)" >&2; exit 1; }
version=$("$binary" --version) || { echo "svp install: $binary does not run" >&2; exit 1; }

entries=()
# PREFIX itself, when it does not exist yet, is recorded as ".".
if [ ! -d "$root" ]; then
  mkdir -p "$root"
  entries+=("d .")
fi
# Create a directory (and its missing parents), recording the ones that did not exist.
make_dir() {
  local d=$1 missing=()
  while [ ! -d "$root/$d" ]; do
    missing=("$d" "${missing[@]}")
    [ "$d" = "${d%/*}" ] && break
    d=${d%/*}
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  mkdir -p "$root/${missing[-1]}"
  for d in "${missing[@]}"; do entries+=("d $d"); done
}
# Write stdin to a file under the root, mode $2.
put() {
  local f=$1 mode=$2
  make_dir "${f%/*}"
  cat >"$root/$f.tmp.$$"
  chmod "$mode" "$root/$f.tmp.$$"
  mv -f "$root/$f.tmp.$$" "$root/$f"
  entries+=("f $f")
}

# (put runs in this shell, not at the end of a pipe: it records what it wrote in `entries`.)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
put "$BIN" 755 <"$binary"
svp="$root/$BIN"
"$svp" __man >"$tmp" && put "$MAN" 644 <"$tmp"
"$svp" completion bash >"$tmp" && put "$BASH" 644 <"$tmp"
"$svp" completion zsh >"$tmp" && put "$ZSH" 644 <"$tmp"
"$svp" completion fish >"$tmp" && put "$FISH" 644 <"$tmp"
# The unit runs the svp just installed (without DESTDIR: where it will be at run time).
sed -e "s|%h/\.local/bin/svp|$prefix/$BIN|g" contrib/svp.service >"$tmp" && put "$UNIT" 644 <"$tmp"
make_dir "${MANIFEST%/*}"
entries+=("f $MANIFEST")
# Installing again: the directories an earlier install created are still its to remove.
if [ -f "$root/$MANIFEST" ]; then
  mapfile -t earlier < <(grep '^d ' "$root/$MANIFEST" || true)
  merged=()
  for e in "${earlier[@]}" "${entries[@]}"; do
    case " ${merged[*]/%/|} " in *" $e| "*) ;; *) merged+=("$e") ;; esac
  done
  entries=("${merged[@]}")
fi
printf '%s\n' "${entries[@]}" >"$root/$MANIFEST"

size=$(awk -v b="$(wc -c <"$root/$BIN")" 'BEGIN { printf "%.1f", b / 1e6 }')
echo "svp install: ${version} into $root: $BIN (${size} MB), $MAN, completions for bash, zsh and fish, $UNIT"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "  $prefix/bin is not in PATH: add it (e.g. in ~/.profile) to run svp by name" ;; esac
echo "  zsh: completion needs $prefix/share/zsh/site-functions in \$fpath before compinit (fpath+=($prefix/share/zsh/site-functions))"
echo "  systemd: systemctl --user daemon-reload && systemctl --user enable --now svp   (the embedded node at login)"
