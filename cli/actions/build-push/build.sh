#!/usr/bin/env bash
# The build-push action's build step: turns the inputs (INPUT_*) into a `depot build` command
# line, runs it, and writes build-id, project-id, digest, imageid and metadata to
# $GITHUB_OUTPUT from the metadata file the build wrote.
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$GITHUB_ACTION_PATH/../lib/common.sh"

depot="${DEPOT_CLI:-depot}"
use_credentials
metadata=$(mktemp "${RUNNER_TEMP:-/tmp}/depot-metadata.XXXXXX.json")
trap 'rm -f "$metadata"' EXIT

args=(build --metadata-file "$metadata")
save_args
if flag push "${INPUT_PUSH:-false}"; then args+=(--push); fi
if flag load "${INPUT_LOAD:-false}"; then args+=(--load); fi
if flag no-cache "${INPUT_NO_CACHE:-false}"; then args+=(--no-cache); fi
if [ -n "${INPUT_FILE:-}" ]; then args+=(--file "$INPUT_FILE"); fi
if [ -n "${INPUT_TARGET:-}" ]; then args+=(--target "$INPUT_TARGET"); fi
platforms=$(items "${INPUT_PLATFORMS:-}" | paste -sd, -)
if [ -n "$platforms" ]; then args+=(--platform "$platforms"); fi
while IFS= read -r tag; do args+=(--tag "$tag"); done < <(items "${INPUT_TAGS:-}")
while IFS= read -r arg; do args+=(--build-arg "$arg"); done < <(lines "${INPUT_BUILD_ARGS:-}")
while IFS= read -r label; do args+=(--label "$label"); done < <(lines "${INPUT_LABELS:-}")
args+=(-- "${INPUT_CONTEXT:-.}")

echo "depot ${args[*]}"
"$depot" "${args[@]}"

metadata_outputs "$metadata" \
    'digest=."containerimage.digest"' \
    'imageid=."containerimage.config.digest" // ."containerimage.digest"'
