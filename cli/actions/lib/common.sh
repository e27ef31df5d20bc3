#!/usr/bin/env bash
# Helpers the actions' step scripts share (sourced): list inputs, boolean inputs, the token and
# registry inputs, and writing outputs to $GITHUB_OUTPUT.

# A list input: one item per line or comma-separated, blanks ignored.
items() {
    tr ',' '\n' <<<"$1" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' | grep -v '^$' || true
}

# One item per line only (build args and labels may hold commas).
lines() {
    sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' <<<"$1" | grep -v '^$' || true
}

# A boolean input: true or false; anything else fails the step, naming the input.
flag() {
    case "${2:-false}" in
    true) return 0 ;;
    false | "") return 1 ;;
    *)
        echo "::error::the $1 input is true or false (got $2)"
        exit 1
        ;;
    esac
}

# The token and registry inputs, for the CLI (the token masked first).
use_credentials() {
    if [ -n "${INPUT_TOKEN:-}" ]; then
        echo "::add-mask::$INPUT_TOKEN"
        export DEPOT_TOKEN="$INPUT_TOKEN"
    fi
    if [ -n "${INPUT_REGISTRY:-}" ]; then
        export DEPOT_REGISTRY="$INPUT_REGISTRY"
    fi
    if [ -n "${INPUT_PROJECT:-}" ]; then
        export DEPOT_PROJECT_ID="$INPUT_PROJECT"
    fi
}

# output NAME VALUE: a (possibly multi-line) output, with a delimiter no value can contain.
output() {
    local eof
    eof="DEPOT_EOF_$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')"
    {
        echo "$1<<$eof"
        printf '%s\n' "$2"
        echo "$eof"
    } >>"$GITHUB_OUTPUT"
}

# save_args: `--save` and `--save-tag`s from the save and save-tags inputs, into the array
# `args` of the calling script.
save_args() {
    if flag save "${INPUT_SAVE:-true}"; then
        args+=(--save)
        while IFS= read -r tag; do args+=(--save-tag "$tag"); done < <(items "${INPUT_SAVE_TAGS:-}")
    elif [ -n "${INPUT_SAVE_TAGS:-}" ]; then
        echo "::error::save-tags needs save: true"
        exit 1
    fi
}

# metadata_outputs FILE [KEY=JQ]...: the metadata file as `metadata`, the build's `build-id`
# and `project-id`, and each KEY from its jq expression (nothing when the build wrote none).
metadata_outputs() {
    local file=$1 meta
    shift
    [ -s "$file" ] || return 0
    meta=$(cat "$file")
    output metadata "$meta"
    output build-id "$(jq -r '."depot.build".buildID // empty' <<<"$meta")"
    output project-id "$(jq -r '."depot.build".projectID // empty' <<<"$meta")"
    local pair
    for pair in "$@"; do
        output "${pair%%=*}" "$(jq -r "(${pair#*=}) // empty" <<<"$meta")"
    done
}
