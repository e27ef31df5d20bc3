#!/usr/bin/env bash
# The action's pull step: turns the inputs (INPUT_*) into a `depot pull` command line, runs it
# against the Docker daemon at DOCKER_HOST, and writes the names of the images pulled to
# $GITHUB_OUTPUT as `images`, one per line.
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$GITHUB_ACTION_PATH/../lib/common.sh"

depot="${DEPOT_CLI:-depot}"
if [ -z "${INPUT_BUILD_ID:-}" ]; then
    echo "::error::the build-id input is required"
    exit 1
fi
use_credentials

args=(pull)
if [ -n "${INPUT_PROJECT:-}" ]; then args+=(--project "$INPUT_PROJECT"); fi
if [ -n "${INPUT_PLATFORM:-}" ]; then args+=(--platform "$INPUT_PLATFORM"); fi
while IFS= read -r tag; do args+=(--tag "$tag"); done < <(items "${INPUT_TAGS:-}")
while IFS= read -r target; do args+=(--target "$target"); done < <(items "${INPUT_TARGETS:-}")
args+=(-- "$INPUT_BUILD_ID")

echo "depot ${args[*]}"
images=$("$depot" "${args[@]}")
printf '%s\n' "$images"

output images "$images"
