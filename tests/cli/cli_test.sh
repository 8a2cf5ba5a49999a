#!/usr/bin/env bash
# The command line as a user meets it: help for every command, init, a config error, new
# secrets, and what run does with the state directory and files others can read. The
# daemons started here find their brokers nowhere (a closed port on loopback).
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

# ---- secrets and the state directory (issue 12 items 9 and 10) ----

s1=$("$BIN" secret); s2=$("$BIN" secret)
check "secret prints 43 characters of base64url, new each time" '[[ $s1 =~ ^[A-Za-z0-9_-]{43}$ && $s1 != "$s2" ]]'
"$BIN" secret -o "$T/net.secret" >/dev/null
check "secret -o writes a private file" '[[ $(stat -c %a "$T/net.secret") == 600 && $(wc -c <"$T/net.secret") == 44 ]]'
before=$(cat "$T/net.secret")
check "secret -o never writes over a file" '! "$BIN" secret -o "$T/net.secret" 2>/dev/null && [[ $(cat "$T/net.secret") == "$before" ]]'

# run_until_started CONF: start the daemon (its brokers are nowhere: a closed loopback
# port), wait until it has tried to reach them (its state is open by then), stop it;
# its stderr is in $T/run.log, its exit status in $rc.
run_until_started() {
  "$BIN" run -c "$1" 2>"$T/run.log" &
  local pid=$! k
  for ((k = 0; k < 600; k++)); do
    grep -q "cannot connect to 127.0.0.1:1 " "$T/run.log" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  kill $pid 2>/dev/null
  wait $pid
  rc=$?
}
conf() { # conf STATE_DIR SECRET_LINE [EXTRA]
  printf '[site]\nname = home\nstate_dir = %s\n[local]\nport = 1\n[signal]\nurl = mqtt://127.0.0.1:1\n%s\n%s[peer cabin]\nfingerprint = %s\ntopic = # both 2\n' \
    "$1" "$2" "${3:-}" "$fp" >"$T/run.conf"
}

conf "$T/state" "secret_file = $T/net.secret"
run_until_started "$T/run.conf"
check "the database is created private" '[[ $(stat -c %a "$T/state/queue.db") == 600 ]]'
chmod 755 "$T/state"
chmod 644 "$T/state/queue.db"
run_until_started "$T/run.conf"
check "run makes the state dir 0700 again" '[[ $(stat -c %a "$T/state") == 700 ]]'
check "run makes the database 0600 again" '[[ $(stat -c %a "$T/state/queue.db") == 600 ]]'
check "run with a strong secret says nothing about it" '! grep -q "entropy" "$T/run.log"'

chmod 644 "$T/state/key.pem"
err=$("$BIN" run -c "$T/run.conf" 2>&1); rc=$?
check "a key.pem others can read is refused, exit code 1" '[[ $rc == 1 ]]'
check "the message gives the chmod that fixes it" 'grep -q "chmod 600 $T/state/key.pem" <<<"$err"'
chmod 600 "$T/state/key.pem"

chmod 644 "$T/net.secret"
err=$("$BIN" run -c "$T/run.conf" 2>&1); rc=$?
check "a secret_file others can read is refused" '[[ $rc == 1 ]] && grep -q "secret_file.*chmod 600 $T/net.secret" <<<"$err"'
chmod 600 "$T/net.secret"

key_sum=$(sha256sum <"$T/state/key.pem")
mv "$T/state/cert.pem" "$T/cert.pem.saved"
err=$("$BIN" run -c "$T/run.conf" 2>&1); rc=$?
check "run refuses a key.pem without cert.pem" '[[ $rc == 1 ]] && grep -q "has key.pem but no cert.pem" <<<"$err"'
check "... and leaves the key as it was" '[[ $(sha256sum <"$T/state/key.pem") == "$key_sum" && ! -e $T/state/cert.pem ]]'
err=$("$BIN" init --name home -d "$T/state" 2>&1); rc=$?
check "init refuses it too" '[[ $rc == 1 && $(sha256sum <"$T/state/key.pem") == "$key_sum" ]]'
mv "$T/cert.pem.saved" "$T/state/cert.pem"

mkdir -p "$T/trap" && chmod 700 "$T/trap"
ln -s "$T/victim" "$T/trap/key.pem.new"
"$BIN" init --name home -d "$T/trap" >/dev/null
check "a symlink planted where the key is written is not followed" '[[ ! -e $T/victim && -f $T/trap/key.pem && ! -L $T/trap/key.pem && $(stat -c %a "$T/trap/key.pem") == 600 ]]'

conf "$T/state" "secret = MyHomeNetwork123"
run_until_started "$T/run.conf"
check "a weak secret is warned about at start" 'grep -q "WARN config: \[signal\] the network secret has about 96 bits" "$T/run.log"'
check "the warning does not show the secret" '! grep -q "MyHomeNetwork123" "$T/run.log"'

# ---- issue 14: identity only from init, check, pairing lines, the example config ----

h=$("$BIN" help)
check "help lists the service commands and points to the man pages" 'for c in status ping reload peer check; do has "$h" "^  $c "; done && has "$h" "brokerless\(8\)"'
conf "$T/none" "secret_file = $T/net.secret"
err=$("$BIN" run -c "$T/run.conf" 2>&1); rc=$?
check "run without an identity refuses, exit code 1" '[[ $rc == 1 ]] && has "$err" "no identity in $T/none .*brokerless init --name home --state-dir $T/none"'
check "... and creates nothing" '[[ ! -e $T/none ]]'
out=$("$BIN" check -c "$T/run.conf"); rc=$?
check "check says what is missing, exit code 1" '[[ $rc == 1 ]] && has "$out" "^FAIL identity: none in $T/none"'
conf "$T/state" "secret_file = $T/net.secret"
out=$("$BIN" check -c "$T/run.conf"); rc=$?
check "check passes a good config and identity" '[[ $rc == 0 ]] && has "$out" "^ok   identity: fingerprint $fp"'
ex=${BL_SRC:-$(dirname "$0")/../..}/etc/brokerless.conf.example
sed "s|^secret_file = .*|secret_file = $T/net.secret|" "$ex" >"$T/example.conf"
out=$("$BIN" check -c "$T/example.conf" 2>&1)
check "the example config, every key in it, loads" 'has "$out" "^ok   config: .*site home, 0 peers"'

line=$("$BIN" init --name office -d "$T/office" | grep "^brokerless-peer ")
check "init prints a pairing line" 'has "$line" "^brokerless-peer name=office fingerprint=([0-9A-F]{2}:){31}[0-9A-F]{2}$"'
chmod 640 "$T/run.conf"
out=$("$BIN" peer add -c "$T/run.conf" --rule "x/# out 1" "$line"); rc=$?
check "peer add writes the section (no daemon: nothing to reload)" '[[ $rc == 0 ]] && has "$out" "no daemon runs" && grep -q "^\[peer office\]$" "$T/run.conf" && grep -qx "topic = x/# out 1" "$T/run.conf"'
check "peer add keeps the file's mode" '[[ $(stat -c %a "$T/run.conf") == 640 ]]'
check "peer list shows it" 'has "$("$BIN" peer list -c "$T/run.conf")" "^office +- "'
"$BIN" peer remove -c "$T/run.conf" office >/dev/null
check "peer remove takes it out again" '! grep -q "office" "$T/run.conf"'
check "peer add refuses a line that is not one" '! "$BIN" peer add -c "$T/run.conf" "name=x fingerprint=$fp" 2>/dev/null'
check "status without a daemon says so, exit code 1" '! "$BIN" status -c "$T/run.conf" 2>"$T/err" && grep -q "no daemon answers on $T/state/control.sock" "$T/err"'

echo "$PASS passed, $FAIL failed"
[[ $FAIL == 0 ]]
