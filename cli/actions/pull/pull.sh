#!/usr/bin/env bash
# The action's pull step: turns the inputs (INPUT_*) into a `depot pull` command line, runs it
# against the Docker daemon at DOCKER_HOST, and writes the names of the images pulled to
# $GITHUB_OUTPUT as `images`, one per line.
set -euo pipefail

depot="${DEPOT_CLI:-depot}"
if [ -z "${INPUT_BUILD_ID:-}" ]; then
    echo "::error::the build-id input is required"
    exit 1
fi
if [ -n "${INPUT_TOKEN:-}" ]; then
    echo "::add-mask::$INPUT_TOKEN"
    export DEPOT_TOKEN="$INPUT_TOKEN"
fi
if [ -n "${INPUT_REGISTRY:-}" ]; then
    export DEPOT_REGISTRY="$INPUT_REGISTRY"
fi

# A list input: one item per line or comma-separated, blanks ignored.
items() {
    tr ',' '\n' <<<"$1" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' | grep -v '^$' || true
}

args=(pull)
if [ -n "${INPUT_PROJECT:-}" ]; then args+=(--project "$INPUT_PROJECT"); fi
if [ -n "${INPUT_PLATFORM:-}" ]; then args+=(--platform "$INPUT_PLATFORM"); fi
while IFS= read -r tag; do args+=(--tag "$tag"); done < <(items "${INPUT_TAGS:-}")
while IFS= read -r target; do args+=(--target "$target"); done < <(items "${INPUT_TARGETS:-}")
args+=(-- "$INPUT_BUILD_ID")

echo "depot ${args[*]}"
images=$("$depot" "${args[@]}")
printf '%s\n' "$images"

# A delimiter no image name can contain.
eof="DEPOT_IMAGES_$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')"
{
    echo "images<<$eof"
    printf '%s\n' "$images"
    echo "$eof"
} >>"$GITHUB_OUTPUT"
