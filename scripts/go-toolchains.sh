#!/usr/bin/env bash
# Fetch the Go toolchains gomap cross-checks against, as Debian packages, without
# changing the system: a private apt configuration (own sources list, state, lists
# and cache under the cache dir) downloads the .debs with `apt-get download`, and
# `dpkg -x` unpacks each into the cache dir. Nothing is installed; the system's
# apt state and its Go are untouched. Idempotent: a toolchain already unpacked is
# skipped (and so is the download when all of them are there).
#
#   scripts/go-toolchains.sh [DIR]     DIR defaults to ${XDG_CACHE_HOME:-~/.cache}/gomap/go-toolchains
#
# Go 1.19 is Debian bookworm's `golang-go` (installed system-wide by the README's
# command); 1.20 has no Debian package in these suites. This script adds:
#   golang-1.21-go, golang-1.22-go, golang-1.23-go   bookworm-backports
#   golang-1.24-go                                   trixie
# Prints one line per toolchain: "go1.NN.P <path to bin/go>".
# `python -m gomap crosscheck --all-go` finds them in the same directory.
set -euo pipefail

DIR=${1:-${GOMAP_GO_TOOLCHAINS:-${XDG_CACHE_HOME:-$HOME/.cache}/gomap/go-toolchains}}
MIRROR=${GOMAP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# package  suite
PACKAGES=(
  "golang-1.21-go bookworm-backports"
  "golang-1.22-go bookworm-backports"
  "golang-1.23-go bookworm-backports"
  "golang-1.24-go trixie"
)

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

have() { # the unpacked toolchain of package $1, if complete
  local root="$DIR/$1/usr/lib/go-${1#golang-}"
  root=${root%-go}
  [[ -x "$root/bin/go" && -d "$root/src/runtime" ]] && echo "$root/bin/go"
}

missing=()
for entry in "${PACKAGES[@]}"; do
  pkg=${entry%% *}
  have "$pkg" >/dev/null || missing+=("$entry")
done

if ((${#missing[@]})); then
  APT="$DIR/.apt"
  mkdir -p "$APT"/{lists/partial,cache/archives/partial,etc/preferences.d,etc/apt.conf.d,debs}
  : >"$APT/status"
  sources="$APT/etc/sources.list"
  : >"$sources"
  trusted=""
  # Fallback (documented, off by default): GOMAP_APT_TRUSTED=1 accepts the suites'
  # Release files without a signature check, for a machine whose keyring is too
  # old to know the newest suite's key. The .debs are still checked against the
  # (then unverified) Packages hashes.
  if [[ "${GOMAP_APT_TRUSTED:-0}" == 1 ]]; then trusted="trusted=yes "; fi
  for suite in $(printf '%s\n' "${missing[@]}" | awk '{print $2}' | sort -u); do
    if [[ -n "$trusted" ]]; then
      echo "deb [${trusted}] $MIRROR $suite main" >>"$sources"
    else
      echo "deb [signed-by=$KEYRING] $MIRROR $suite main" >>"$sources"
    fi
  done
  opts=(
    -o "Dir::Etc::SourceList=$sources"
    -o "Dir::Etc::SourceParts=-"
    -o "Dir::Etc::Preferences=$APT/etc/preferences"
    -o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d"
    -o "Dir::Etc::Parts=$APT/etc/apt.conf.d"
    -o "Dir::State=$APT"
    -o "Dir::State::Lists=$APT/lists"
    -o "Dir::State::status=$APT/status"
    -o "Dir::Cache=$APT/cache"
    -o "Dir::Cache::Archives=$APT/cache/archives"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
    -o "Acquire::Languages=none"
    -o "APT::Architecture=$(dpkg --print-architecture)"
  )
  if [[ -n "$trusted" ]]; then opts+=(-o "Acquire::AllowInsecureRepositories=true"); fi
  echo "go-toolchains: fetching package lists for $(printf '%s\n' "${missing[@]}" | awk '{print $2}' | sort -u | tr '\n' ' ')" >&2
  if ! apt-get "${opts[@]}" -qq update >&2; then
    echo "go-toolchains: apt-get update failed (signature or network); if the keyring is too old for a suite," >&2
    echo "  re-run with GOMAP_APT_TRUSTED=1 to skip the Release signature check (fallback)" >&2
    exit 1
  fi
  for entry in "${missing[@]}"; do
    pkg=${entry%% *}
    suite=${entry##* }
    # golang-1.NN-go depends on golang-1.NN-src (the runtime sources, GOROOT/src):
    # the toolchain cannot build without it, so both are unpacked.
    for p in "$pkg" "${pkg%-go}-src"; do
      (cd "$APT/debs" && rm -f "${p}"_*.deb && apt-get "${opts[@]}" -qq download "$p/$suite" >&2)
      deb=$(ls "$APT/debs/${p}"_*.deb | head -1)
      echo "go-toolchains: unpacking $(basename "$deb")" >&2
      mkdir -p "$DIR/$pkg"
      dpkg -x "$deb" "$DIR/$pkg"
      rm -f "$deb"
    done
  done
  rm -rf "$APT/cache/archives"/*.deb
fi

status=0
for entry in "${PACKAGES[@]}"; do
  pkg=${entry%% *}
  if go=$(have "$pkg"); then
    echo "$("$go" env GOVERSION 2>/dev/null || echo "$pkg") $go"
  else
    echo "go-toolchains: $pkg missing after download" >&2
    status=1
  fi
done
exit $status
