#!/usr/bin/env bash
# Reload without dropping anything: while 10,000 QoS 1 messages flow from alpha to bravo,
# alpha gets a third peer with `brokerless peer add` (which reloads the daemon). Bravo
# gets every message exactly once, alpha's link to bravo never drops, the link to
# charlie opens and carries a message. Then a config that does not load (SIGHUP) and one
# that changes what a reload cannot apply (`brokerless reload`) are refused, the daemon
# keeps running on its config, and a peer removed by `peer remove` is closed with what
# is queued for it kept until `peer forget`.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=10000

bl_lab 3 cone "test/# both 1"
conf1=$LAB_DIR/site1.conf
"$BL_BIN" peer remove --no-reload -c "$conf1" charlie >/dev/null
assert_fails "alpha's config starts without charlie" grep -q "peer charlie" "$conf1"
bl_start 1
bl_start 2
bl_start 3
if bl_wait_open 1 bravo 30; then pass "alpha-bravo link open"; else fail "alpha-bravo link did not open"; fi

bl_sub 2 subB 'test/seq' -F '%p'
bl_sub 3 subC 'test/c' -F '%p'
bl_pub_seq_paced 1 test/seq 1 $N 10 &
pub=$!
bl_wait_got subB 1000 30 || true
out=$("$BL_BIN" peer add -c "$conf1" --rule "test/# both 1" \
  "brokerless-peer name=charlie fingerprint=${BL_FP[3]}")
if grep -q "the daemon reloaded" <<<"$out"; then pass "peer add reloaded the running daemon"; else fail "peer add: $out"; fi
got_at_add=$(bl_got subB | wc -l)
if bl_wait_open 1 charlie 30; then pass "the new peer's link opens after the reload"; else fail "charlie's link did not open"; fi

# A config that does not load: refused on SIGHUP, the running one kept.
cp "$conf1" "$LAB_DIR/good.conf"
sed 's/^\[ice\]$/[ice]\nstunn = 198.18.0.1/' "$LAB_DIR/good.conf" >"$conf1"
kill -HUP "$(lab_pid bl1)"
lab_wait_for 10 grep -q "reload refused" "$(bl_log 1)" || true
if grep -q "reload refused, the running config stays: .*site1.conf.*stunn" "$(bl_log 1)"; then
  pass "a config that does not load is refused on SIGHUP, naming the key"
else
  fail "no refusal of the broken config in the log"
fi
assert_fails "brokerless reload refuses it too" "$BL_BIN" reload -c "$conf1"
# One that loads but changes what only a restart applies.
sed 's/^\[ice\]$/[ice]\ntcp = true/' "$LAB_DIR/good.conf" >"$conf1"
err=$("$BL_BIN" reload -c "$conf1" 2>&1 || true)
if grep -q "\[ice\] tcp changed.*restart" <<<"$err"; then pass "a change a reload cannot apply is refused: $err"; else fail "reload: $err"; fi
cp "$LAB_DIR/good.conf" "$conf1"

wait $pub
bl_wait_seq subB $N 120 || true
sleep 2
r=$(bl_seq_report subB 1 $N)
echo "subB: $r (when peer add ran: $got_at_add)"
if ((got_at_add < N)); then pass "the reload came while messages flowed ($got_at_add of $N had arrived)"; else fail "the flow ended before the reload"; fi
assert_eq "$r" "received $N unique $N duplicates 0 missing 0 out_of_order 0" "bravo got all $N messages once, in order"
assert_eq "$(bl_count 1 'peer bravo: link open via')" 1 "alpha's link to bravo opened once"
assert_eq "$(bl_count 1 'peer bravo: (link down|connection attempt failed)')" 0 "and never went down"

bl_pub 1 -t test/c -m "hello charlie" -q 1
bl_wait_got subC 1 15 || true
assert_eq "$(bl_got subC)" "hello charlie" "alpha -> charlie after the reload"

# Removed: the link closes; what waits for the peer stays queued until peer forget.
"$BL_BIN" peer remove -c "$conf1" charlie >/dev/null
lab_wait_for 10 grep -q "peer charlie.*removed from the config: link closed" "$(bl_log 1)" || true
assert_ok "peer remove closed charlie's link" grep -q "charlie.*removed from the config: link closed" "$(bl_log 1)"
bl_stop 3
for k in 1 2 3; do bl_pub 1 -t test/x -m "q$k" -q 1; done
sleep 1
fg=$("$BL_BIN" peer forget -c "$conf1" charlie)
assert_eq "$fg" "dropped 0 messages queued for charlie" "nothing was queued for a removed peer"
assert_fails "peer forget refuses a configured peer" "$BL_BIN" peer forget -c "$conf1" bravo
st=$("$BL_BIN" status --json -c "$conf1")
assert_eq "$(/usr/bin/python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(len(s["peers"]), s["counters"]["reloads"], s["counters"]["reloads_refused"])' "$st")" "1 2 2" \
  "status: one peer left, 2 reloads applied, 2 refused"

lab_finish
