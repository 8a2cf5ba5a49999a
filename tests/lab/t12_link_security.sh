#!/usr/bin/env bash
# Nobody else can join:
#  - a site whose certificate does not match the pinned fingerprint gets no channel and
#    no data (its signalling is refused: every message is signed by the site key; the
#    DTLS handshake would refuse it too: tests/unit/test_datachannel.c);
#  - forged and replayed signalling on the broker changes nothing;
#  - a listener subscribed to '#' on the signalling broker learns no site name and no
#    address.
set -euo pipefail
. "$(dirname "$0")/sites.sh"

lab_up 3 cone
lab_start_pub_broker
lab_start_coturn

# The eavesdropper: everything on the signalling broker, from before the first site.
lab_bg spy pub mosquitto_sub -h "$LAB_PUB_IP" -t '#' -v -V 5
lab_bg spyraw pub mosquitto_sub -h "$LAB_PUB_IP" -t '#' -V 5 -F '%t %x'
sleep 0.5

bl_sites 3
# charlie (site 3) holds a real identity, but alpha and bravo pin another one for it;
# charlie pretends to be bravo towards alpha by using bravo's name... it cannot get
# bravo's key, so it runs with its own certificate under bravo's name.
bl_config 1 "test/# both 2" stun
bl_config 2 "test/# both 2" stun
# The impostor: site 3 calls itself bravo, with its own key.
BL_NAMES[3]=bravo
bl_config 3 "test/# both 2" stun
sed -i '/^\[peer bravo\]/,/^$/d' "$LAB_DIR/site3.conf"   # it only peers with alpha
BL_NAMES[3]=charlie

bl_start 1
bl_start 2
bl_wait_open 1 bravo 30 && pass "alpha and bravo link up" || fail "alpha-bravo link did not open"
bl_sub 1 subA 'test/#'
bl_sub 3 subC 'test/#'

# Start the impostor: it offers/answers as "bravo" with a certificate alpha does not pin.
bl_start 3
sleep 12
if grep -qE "not signed by the pinned certificate of: bravo, presented certificate ${BL_FP[3]}, pinned ${BL_FP[2]}" "$(bl_log 1)"; then
  pass "alpha refused the impostor's signalling, naming both fingerprints"
else
  fail "alpha did not log the impostor's fingerprint"
fi
assert_eq "$(bl_count 3 'link open')" "0" "the impostor never gets a channel"
bl_pub 1 -t test/secret -m "for bravo only" -q 1
bl_wait_got subC 1 3 || true
assert_eq "$(bl_got subC | wc -l)" "0" "the impostor receives no data"
bl_stop 3

# Replay: re-publish everything the spy captured, verbatim, and some forgeries.
n_before=$(bl_count 1 "link (open|down)")
while read -r topic hex; do
  [[ $topic == bl/* ]] || continue
  printf '%s' "$hex" | xxd -r -p >"$LAB_DIR/replay.bin" 2>/dev/null || continue
  lab_exec_pub mosquitto_pub -h "$LAB_PUB_IP" -t "$topic" -f "$LAB_DIR/replay.bin" -q 1 || true
  lab_exec_pub mosquitto_pub -h "$LAB_PUB_IP" -t "$topic" -m "forged garbage" -q 1 || true
  head -c 300 /dev/urandom >"$LAB_DIR/forged.bin"
  lab_exec_pub mosquitto_pub -h "$LAB_PUB_IP" -t "$topic" -f "$LAB_DIR/forged.bin" -q 1 || true
done < <(grep -v '^$' "$LAB_DIR/spyraw.log" | awk 'NR <= 40')
sleep 3
if grep -qE "dropped a signalling message: replayed" "$(bl_log 1)" "$(bl_log 2)"; then
  pass "replayed signalling is recognised and dropped"
else
  fail "no replay was reported"
fi
if grep -qE "dropped a signalling message: cannot open it" "$(bl_log 1)" "$(bl_log 2)"; then
  pass "forged signalling is refused"
else
  fail "no forgery was reported"
fi
assert_eq "$(bl_count 1 'link (open|down)' )" "$n_before" "the link was not disturbed by replays and forgeries"
bl_sub 2 subB 'test/#'
bl_pub 1 -t test/after -m "still fine" -q 1
bl_wait_got subB 1 10 || true
assert_eq "$(bl_got subB)" "test/after still fine" "messages still flow after the attack"

# What the spy saw: no site name, no address, in topics or payloads.
if grep -aqE "alpha|bravo|charlie" "$LAB_DIR/spy.log"; then
  fail "a site name is visible on the signalling broker"
else
  pass "no site name visible on the signalling broker ($(grep -c . "$LAB_DIR/spy.log") messages seen)"
fi
if grep -aqE "198\.1[89]\.[0-9]+\.[0-9]+" "$LAB_DIR/spy.log"; then
  fail "an IP address is visible on the signalling broker"
else
  pass "no address visible on the signalling broker"
fi
lab_finish
