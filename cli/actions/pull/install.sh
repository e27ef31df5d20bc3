#!/usr/bin/env bash
# The action's first step: finds the depot CLI, else installs it, and writes its path to
# $GITHUB_OUTPUT as `path`. In order: `depot` on PATH (a runner image or an earlier step put it
# there); a copy installed by an earlier job into the runner's tool cache; else `cargo install`
# from the action's own checkout ($GITHUB_ACTION_PATH is inside the repository at the action's
# ref, so the CLI always matches the action). The cache key is a hash of the CLI's sources.
set -euo pipefail

if path=$(command -v depot); then
    echo "Using the depot CLI on PATH: $path ($("$path" --version))"
else
    src=$(cd "$GITHUB_ACTION_PATH/../../.." && pwd)
    key=$(cd "$src" && find Cargo.toml Cargo.lock cli -type f \( -name '*.rs' -o -name '*.toml' -o -name Cargo.lock \) |
        LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)
    root="${RUNNER_TOOL_CACHE:-$HOME/.cache}/depot-cli/$key"
    if [ -x "$root/bin/depot" ]; then
        echo "Using the depot CLI cached at $root"
    else
        if ! command -v cargo >/dev/null 2>&1; then
            echo "::error::no depot CLI on PATH and no cargo to build it: add a Rust toolchain step (e.g. dtolnay/rust-toolchain@stable) or put depot on PATH"
            exit 1
        fi
        echo "Installing the depot CLI from $src into $root (once per runner and version)"
        cargo install --locked --quiet --path "$src/cli" --root "$root"
    fi
    path="$root/bin/depot"
fi
echo "path=$path" >>"$GITHUB_OUTPUT"
