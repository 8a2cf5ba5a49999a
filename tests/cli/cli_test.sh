#!/usr/bin/env bash
# The command line as a user meets it: help for every command, init, and a config error.
set -uo pipefail
BIN=${BL_BIN:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $1"; }
ko() { FAIL=$((FAIL + 1)); echo "FAIL - $1"; }
check() { if eval "$2"; then ok "$1"; else ko "$1"; fi; }
# has TEXT PATTERN: TEXT (already captured: never grep a live pipe under pipefail) has a
# line matching the extended regular expression PATTERN.
has() { grep -qE -- "$2" <<<"$1"; }

check "version prints the version" 'has "$("$BIN" version)" "^brokerless [0-9]+\.[0-9]+\.[0-9]+$"'
check "help lists every command" 'h=$("$BIN" help); has "$h" init && has "$h" run && has "$("$BIN" --help)" version'
check "init --help describes its options" 'has "$("$BIN" init --help)" "--state-dir"'
check "run --help describes its options" 'has "$("$BIN" run --help)" "--config"'
check "an unknown command is refused with exit code 2" '! "$BIN" frobnicate 2>/dev/null; [[ $("$BIN" frobnicate >/dev/null 2>&1; echo $?) == 2 ]]'
check "init without --name is refused" '! "$BIN" init -d "$T/x" 2>/dev/null'

out=$("$BIN" init --name home -d "$T/state")
fp=$(sed -n 's/^fingerprint = //p' <<<"$out")
check "init prints a SHA-256 fingerprint" '[[ $fp =~ ^([0-9A-F]{2}:){31}[0-9A-F]{2}$ ]]'
check "init prints the [peer] section to paste" 'grep -q "^\[peer home\]$" <<<"$out" && grep -q "^topic = " <<<"$out"'
check "the key is private (0600) and the dir 0700" '[[ $(stat -c %a "$T/state/key.pem") == 600 && $(stat -c %a "$T/state") == 700 ]]'
again=$("$BIN" init --name home -d "$T/state" | sed -n 's/^fingerprint = //p')
check "init again keeps the same identity" '[[ $again == "$fp" ]]'

printf '[site]\nname = home\n[signal]\nurl = mqtt://127.0.0.1\nsecret = 0123456789abcdefXX\n[peer cabin]\nfingerprint = %s\ntopic = # both 2\n[local]\nprot = 1883\n' "$fp" >"$T/bad.conf"
err=$("$BIN" run -c "$T/bad.conf" 2>&1); rc=$?
check "run refuses a config with a typo, exit code 1" '[[ $rc == 1 ]]'
check "the error names the file, section and key" 'grep -q "bad.conf" <<<"$err" && grep -q "\[local\]" <<<"$err" && grep -q "prot" <<<"$err"'
check "run without -c is refused" '! "$BIN" run 2>/dev/null'

echo "$PASS passed, $FAIL failed"
[[ $FAIL == 0 ]]
