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
save_args
if flag push "${INPUT_PUSH:-false}"; then args+=(--push); fi
if flag load "${INPUT_LOAD:-false}"; then args+=(--load); fi
while IFS= read -r file; do args+=(--file "$file"); done < <(items "${INPUT_FILES:-}")
args+=(--)
while IFS= read -r target; do args+=("$target"); done < <(items "${INPUT_TARGETS:-}")

echo "depot ${args[*]}"
"$depot" "${args[@]}"

metadata_outputs "$metadata"
