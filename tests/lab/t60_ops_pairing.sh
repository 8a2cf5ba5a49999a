#!/usr/bin/env bash
# Two sites paired with the command line alone: each starts from a config without peers,
# `brokerless init -c` prints its pairing line, the other site's `brokerless peer add`
# turns it into a [peer] section (the narrow default rules: each site's own tree), both
# run, messages cross both ways, `status --json` shows the peer open on a direct path
# with both addresses and exact counts, `ping` answers, `peer list` and the status table
# say the same.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
PY=/usr/bin/python3

lab_up 2 cone
lab_start_pub_broker
lab_start_coturn
declare -A LINE=()
for i in 1 2; do
  lab_start_site_broker "$i"
  cat >"$LAB_DIR/site$i.conf" <<CONF
[site]
name = ${BL_NAMES[$i]}
state_dir = $LAB_DIR/state$i

[local]
host = 127.0.0.1

[signal]
url = mqtt://$LAB_PUB_IP:1883
secret = $BL_SECRET

[ice]
stun = $LAB_PUB_IP:3478
CONF
  out=$("$BL_BIN" init -c "$LAB_DIR/site$i.conf")
  LINE[$i]=$(grep '^brokerless-peer ' <<<"$out")
done
assert_eq "$(wc -l <<<"${LINE[1]}")" 1 "init prints one pairing line"
if [[ ${LINE[1]} == "brokerless-peer name=alpha fingerprint="*" signal=mqtt://$LAB_PUB_IP:1883" ]]; then
  pass "the line names the site, its fingerprint and its signalling broker"
else
  fail "pairing line: ${LINE[1]}"
fi

out1=$("$BL_BIN" peer add -c "$LAB_DIR/site1.conf" "${LINE[2]}")
"$BL_BIN" peer add -c "$LAB_DIR/site2.conf" ${LINE[1]} >/dev/null # unquoted: the words rejoin
if grep -q "no daemon runs" <<<"$out1"; then pass "peer add says no daemon runs yet"; else fail "peer add: $out1"; fi
assert_eq "$(grep -c '^topic = ' "$LAB_DIR/site1.conf")" 2 "peer add wrote the two default rules"
assert_ok "the default rules are alpha's tree out and bravo's in" grep -qx "topic = alpha/# out 1" "$LAB_DIR/site1.conf"
assert_fails "peer add refuses the same peer twice" "$BL_BIN" peer add -c "$LAB_DIR/site1.conf" "${LINE[2]}"
assert_fails "peer add refuses a site's own line" "$BL_BIN" peer add -c "$LAB_DIR/site1.conf" "${LINE[1]}"

bl_start 1
bl_start 2
if bl_wait_open 1 bravo 30 && bl_wait_open 2 alpha 30; then pass "link open"; else fail "link did not open"; fi

bl_sub 2 subB 'alpha/#' -F '%t %p'
bl_sub 1 subA 'bravo/#' -F '%t %p'
for k in $(seq 1 20); do bl_pub 1 -t alpha/t -m "a$k" -q 1; done
for k in $(seq 1 5); do bl_pub 2 -t bravo/t -m "b$k" -q 1; done
bl_pub 1 -t other/t -m "not shared" -q 1
bl_wait_got subB 20 20 || true
bl_wait_got subA 5 20 || true
sleep 1
assert_eq "$(bl_got subB | wc -l)" 20 "alpha -> bravo: 20 messages on alpha/, once each"
assert_eq "$(bl_got subA | wc -l)" 5 "bravo -> alpha: 5 messages on bravo/, once each"

json=$(lab_exec 1 "$BL_BIN" status --json -c "$LAB_DIR/site1.conf")
echo "$json" >"$LAB_DIR/status1.json"
# shellcheck disable=SC2016
fields=$($PY -c '
import json, sys
s = json.load(open(sys.argv[1]))
p = [p for p in s["peers"] if p["name"] == "bravo"][0]
print(s["site"], s["local_broker"], s["signalling"], p["state"], p["path"],
      "addr" if p["local"] and p["remote"] else "noaddr",
      p["messages_out"], p["messages_in"], p["queued"], p["link_opens"])
' "$LAB_DIR/status1.json")
read -r site lb sg state path addr mout min queued opens <<<"$fields"
assert_eq "$site $lb $sg" "alpha connected connected" "status --json: the site, its brokers connected"
assert_eq "$state" open "status --json: bravo open"
if [[ $path == host || $path == srflx || $path == prflx ]]; then pass "status --json: a direct path ($path)"; else fail "path '$path'"; fi
assert_eq "$addr" addr "status --json: both addresses of the path"
assert_eq "$mout $min $queued $opens" "20 5 0 1" "status --json: 20 out, 5 in, nothing queued, one link open"
json2=$(lab_exec 2 "$BL_BIN" status --json -c "$LAB_DIR/site2.conf")
state2=$($PY -c 'import json,sys; print(json.loads(sys.argv[1])["peers"][0]["state"])' "$json2")
assert_eq "$state2" open "bravo's status shows alpha open"

ping=$(lab_exec 1 "$BL_BIN" ping -c "$LAB_DIR/site1.conf" -n 3 bravo)
assert_eq "$(grep -cE '^answer from bravo: [0-9]+\.[0-9]{3} ms$' <<<"$ping")" 3 "ping answers 3 times"
assert_fails "ping of an unknown peer fails" lab_exec 1 "$BL_BIN" ping -c "$LAB_DIR/site1.conf" nobody

table=$(lab_exec 1 "$BL_BIN" status -c "$LAB_DIR/site1.conf")
echo "$table"
if grep -qE '^bravo +open ' <<<"$table"; then pass "status prints bravo's row, open"; else fail "status table"; fi
list=$(lab_exec 1 "$BL_BIN" peer list -c "$LAB_DIR/site1.conf")
if grep -qE '^bravo +open ' <<<"$list"; then pass "peer list shows bravo open"; else fail "peer list: $list"; fi

lab_finish
