#!/usr/bin/env bash
# The setup action's second step: adds the CLI's directory to $GITHUB_PATH, exports the
# registry and project for later steps ($GITHUB_ENV), and with `oidc: true` exchanges the job's
# OIDC identity for a depot token, masked before it is written anywhere, exported as DEPOT_TOKEN.
set -euo pipefail

depot="${DEPOT_CLI:?the install step gives the CLI path}"
echo "$(dirname "$depot")" >>"$GITHUB_PATH"
if [ -n "${INPUT_REGISTRY:-}" ]; then
    export DEPOT_REGISTRY="$INPUT_REGISTRY"
    echo "DEPOT_REGISTRY=$INPUT_REGISTRY" >>"$GITHUB_ENV"
fi
if [ -n "${INPUT_PROJECT:-}" ]; then
    export DEPOT_PROJECT_ID="$INPUT_PROJECT"
    echo "DEPOT_PROJECT_ID=$INPUT_PROJECT" >>"$GITHUB_ENV"
fi
case "${INPUT_OIDC:-false}" in
true)
    token=$("$depot" oidc-token)
    echo "::add-mask::$token"
    echo "DEPOT_TOKEN=$token" >>"$GITHUB_ENV"
    echo "Exported DEPOT_TOKEN: a short-lived credential for this job's OIDC identity"
    ;;
false | "") ;;
*)
    echo "::error::the oidc input is true or false (got ${INPUT_OIDC})"
    exit 1
    ;;
esac
