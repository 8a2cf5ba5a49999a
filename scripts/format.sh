#!/usr/bin/env bash
# scripts/format.sh - clang-format (Debian 12's, 14) over every C file of the tree, with
# the repository's .clang-format.
#   bash scripts/format.sh           reformat in place
#   bash scripts/format.sh --check   change nothing; list the files that differ, exit 1 if any
# The check runs in CTest as unit.format, so a badly formatted file turns CI red.
set -uo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find src tests fuzz bench -name '*.[ch]' -not -path '*/node_modules/*' | sort)
if [[ ${1:-} != --check ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  if ! out=$(clang-format --dry-run --Werror "$f" 2>&1); then
    echo "format: $f differs from clang-format (bash scripts/format.sh fixes it):"
    printf '%s\n' "$out" | head -5
    bad=1
  fi
done
((bad)) || echo "format: ${#files[@]} files as clang-format writes them"
exit "$bad"
