#!/usr/bin/env bash
# Finds the depot CLI, else installs it, and writes its path to $GITHUB_OUTPUT as `path` (and
# the version as `version`). Shared by every action in cli/actions/. In order:
#   1. `depot` on PATH (a runner image or an earlier step put it there), when no other version
#      was asked for;
#   2. the runner's tool cache ($RUNNER_TOOL_CACHE/depot/<version>/<arch>), filled by an earlier
#      job;
#   3. the release assets of the requested version (INPUT_VERSION; default the version of the
#      checkout the action runs from, so the CLI matches the action): depot-<v>-linux-<arch>.tar.gz
#      checked against the release's SHA256SUMS (a mismatch fails the step, never falls through),
#      from $DEPOT_RELEASES_URL/v<v>/ (default
#      $GITHUB_SERVER_URL/$GITHUB_ACTION_REPOSITORY/releases/download);
#   4. `cargo install` from the action's own checkout ($GITHUB_ACTION_PATH is inside the
#      repository at the action's ref), when the release has no such asset or cannot be reached.
set -euo pipefail

src=$(cd "$GITHUB_ACTION_PATH/../../.." && pwd)
checkout_version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$src/Cargo.toml" | head -n1)
version="${INPUT_VERSION:-}"
version="${version#v}"
[ "$version" = latest ] && version=""

on_path_version() { "$1" --version 2>/dev/null | awk '{print $2}'; }

if path=$(command -v depot) && { [ -z "$version" ] || [ "$(on_path_version "$path")" = "$version" ]; }; then
    echo "Using the depot CLI on PATH: $path ($("$path" --version))"
    { echo "path=$path"; echo "version=$(on_path_version "$path")"; } >>"$GITHUB_OUTPUT"
    exit 0
fi

version="${version:-$checkout_version}"
case "${RUNNER_ARCH:-$(uname -m)}" in
X64 | x86_64 | amd64) arch=amd64 ;;
ARM64 | aarch64 | arm64) arch=arm64 ;;
*) echo "::error::no depot CLI release for architecture ${RUNNER_ARCH:-$(uname -m)}"; exit 1 ;;
esac
cache="${RUNNER_TOOL_CACHE:-$HOME/.cache}/depot/$version/$arch"

if [ -x "$cache/bin/depot" ] && [ -f "$cache.complete" ]; then
    echo "Using the depot CLI $version cached at $cache"
else
    base="${DEPOT_RELEASES_URL:-${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_ACTION_REPOSITORY:-}/releases/download}"
    asset="depot-$version-linux-$arch.tar.gz"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    fetch() { curl -fsSL --retry 3 --connect-timeout 10 --max-time 300 -o "$tmp/$1" "$base/v$version/$1"; }
    if [ -n "${DEPOT_RELEASES_URL:-}${GITHUB_ACTION_REPOSITORY:-}" ] && fetch SHA256SUMS && fetch "$asset"; then
        want=$(awk -v a="$asset" '$2 == a || $2 == "*" a {print $1}' "$tmp/SHA256SUMS")
        got=$(sha256sum "$tmp/$asset" | cut -d' ' -f1)
        if [ -z "$want" ] || [ "$want" != "$got" ]; then
            echo "::error::$asset does not match its SHA256SUMS entry (want ${want:-none}, got $got): refusing to install it"
            exit 1
        fi
        echo "Downloaded the depot CLI $version ($asset, sha256 $got)"
        rm -rf "$cache"
        mkdir -p "$cache/bin"
        tar -xzf "$tmp/$asset" -C "$tmp"
        install -m 0755 "$tmp/depot" "$cache/bin/depot"
        touch "$cache.complete"
    else
        echo "No release asset $asset at $base/v$version; building the CLI from the action's checkout"
        if ! command -v cargo >/dev/null 2>&1; then
            echo "::error::no depot CLI on PATH, no release asset for $version, and no cargo to build it: use a released version (with: version), add a Rust toolchain step, or put depot on PATH"
            exit 1
        fi
        # Keyed by the sources too: another commit of the same version is another CLI.
        key=$(cd "$src" && find Cargo.toml Cargo.lock cli registry/api-types -type f \( -name '*.rs' -o -name '*.toml' -o -name Cargo.lock \) |
            LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)
        cache="${RUNNER_TOOL_CACHE:-$HOME/.cache}/depot/$version-src.$key/$arch"
        if [ -x "$cache/bin/depot" ] && [ -f "$cache.complete" ]; then
            echo "Using the depot CLI built from these sources, cached at $cache"
        else
            echo "Installing the depot CLI from $src into $cache (once per runner and source)"
            rm -rf "$cache"
            cargo install --locked --quiet --path "$src/cli" --root "$cache"
            touch "$cache.complete"
        fi
    fi
fi
path="$cache/bin/depot"
{ echo "path=$path"; echo "version=$version"; } >>"$GITHUB_OUTPUT"
