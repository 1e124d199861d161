#!/usr/bin/env bash
# The lock files of the install profiles, from pyproject.toml, with uv:
#   requirements/lock.sh            write them, keeping every pin that still fits (make lock)
#   requirements/lock.sh --upgrade  write them with the newest versions that fit (make lock-upgrade)
#   requirements/lock.sh --check    fail, with the difference, unless they match (make lock-check)
# Locks are universal (any OS and CPU, Python 3.11+) and carry every wheel's sha256, so an
# install with --require-hashes gets exactly these files.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
mode=${1:-write}

# Profile -> the extras it installs. serve-gpu leaves onnxruntime out: onnxruntime-gpu
# replaces it (both install the `onnxruntime` package).
profiles=(serve serve-tf train dev serve-gpu)
declare -A extras=(
    [serve]=""
    [serve-tf]="--extra savedmodel"
    [train]="--extra train"
    [dev]="--extra dev"
    [serve-gpu]="--extra gpu --no-emit-package onnxruntime"
)

out=requirements
if [[ $mode == --check ]]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    cp requirements/*.txt "$out"/  # uv keeps the pins of the file it writes over
fi
upgrade=()
[[ $mode == --upgrade ]] && upgrade=(--upgrade)

failed=0
for profile in "${profiles[@]}"; do
    # shellcheck disable=SC2086  # the extras are several words on purpose
    "$UV" pip compile pyproject.toml --quiet --universal --python-version 3.11 \
        --generate-hashes --custom-compile-command "make lock" "${upgrade[@]}" \
        ${extras[$profile]} --output-file "$out/$profile.txt"
    if [[ $mode == --check ]] && ! diff -u "requirements/$profile.txt" "$out/$profile.txt"; then
        echo "requirements/$profile.txt does not match pyproject.toml: run 'make lock'" >&2
        failed=1
    fi
done
exit $failed
