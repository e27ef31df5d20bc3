#!/usr/bin/env bash
# The bake action's step: turns the inputs (INPUT_*) into a `depot bake` command line, runs it
# in the working directory given, and writes build-id, project-id and metadata to
# $GITHUB_OUTPUT from the metadata file the build wrote.
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$GITHUB_ACTION_PATH/../lib/common.sh"

depot="${DEPOT_CLI:-depot}"
use_credentials
metadata=$(mktemp "${RUNNER_TEMP:-/tmp}/depot-metadata.XXXXXX.json")
trap 'rm -f "$metadata"' EXIT
cd "${INPUT_WORKDIR:-.}"

args=(bake --metadata-file "$metadata")
if flag save "${INPUT_SAVE:-true}"; then
    args+=(--save)
    while IFS= read -r tag; do args+=(--save-tag "$tag"); done < <(items "${INPUT_SAVE_TAGS:-}")
elif [ -n "${INPUT_SAVE_TAGS:-}" ]; then
    echo "::error::save-tags needs save: true"
    exit 1
fi
if flag push "${INPUT_PUSH:-false}"; then args+=(--push); fi
if flag load "${INPUT_LOAD:-false}"; then args+=(--load); fi
while IFS= read -r file; do args+=(--file "$file"); done < <(items "${INPUT_FILES:-}")
args+=(--)
while IFS= read -r target; do args+=("$target"); done < <(items "${INPUT_TARGETS:-}")

echo "depot ${args[*]}"
"$depot" "${args[@]}"

if [ -s "$metadata" ]; then
    meta=$(cat "$metadata")
    field() { jq -r "$1 // empty" <<<"$meta"; }
    output metadata "$meta"
    output build-id "$(field '."depot.build".buildID')"
    output project-id "$(field '."depot.build".projectID')"
fi
