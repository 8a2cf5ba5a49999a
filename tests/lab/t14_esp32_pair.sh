#!/usr/bin/env bash
# An ESP32 running Espressif's serverless_mqtt example, unmodified (the lab's board:
# werift-ice and mqtt.js, tests/lab/esppeer), pairs with a Linux site across two NATs on
# the same private subnet: the board is peer1 (the example's default), we are peer2, on
# the lab's public broker. Messages cross both ways, each once, nothing echoes back. The
# board then reboots (a new handshake, new ICE credentials) and the pair comes back by
# itself. The site has no [signal] section: a board alone needs none.
set -euo pipefail
. "$(dirname "$0")/esp32.sh"

esp_lab 2
esp_config 1 "$(esp_peer_section cabin peer2 'test/# both 1')" nosignal
bl_start 1
if grep -q "insecure: mode = esp32-example has no encryption" "$(bl_log 1)" 2>/dev/null ||
  lab_wait_for 5 grep -q "insecure: mode = esp32-example has no encryption" "$(bl_log 1)"; then
  pass "the daemon says at start that this peer is plaintext and unauthenticated"
else
  fail "no start-up warning for the insecure peer"
fi

t0=$(_lab_now_us)
esp_start board 2 peer1
if bl_wait_open 1 cabin 60 && esp_wait board 'boot 1: ice connected' 30; then
  pass "the board and the site pair in $(lab_elapsed "$t0") s"
else
  fail "no link to the board within 60 s"
fi
bl_assert_direct 1 cabin # through both NATs
st=$(lab_exec 1 timeout -s KILL 7 mosquitto_sub -h 127.0.0.1 -t brokerless/alpha/peers/cabin -C 1 -W 5 || true)
if grep -q '"state":"open"' <<<"$st" && grep -q '"insecure":"plaintext, unauthenticated"' <<<"$st"; then
  pass "the status says the link is open and insecure: $st"
else
  fail "status: '$st'"
fi

# Both ways, N messages each; each subscriber sees every message once.
N=20
bl_sub 1 home 'test/#' -F '%t %p %q %r'
bl_sub 2 cabin 'test/#' -F '%t %p'
for ((i = 1; i <= N; i++)); do bl_pub 2 -t "test/cabin/$i" -m "board $i"; done
for ((i = 1; i <= N; i++)); do bl_pub 1 -t "test/home/$i" -m "home $i" -q 1; done
bl_wait_got home "$N" 20 || true
bl_wait_got cabin $((2 * N)) 20 || true
sleep 1
assert_eq "$(bl_got home | grep -c '^test/cabin/')" "$N" "every message of the board reached home"
assert_eq "$(bl_got home | grep '^test/cabin/1 ' || true)" "test/cabin/1 board 1 0 0" \
  "published at home at QoS 0, not retained"
assert_eq "$(bl_got cabin | grep -c '^test/home/')" "$N" "every message from home reached the board"
assert_eq "$(bl_got cabin | grep -c '^test/cabin/')" "$N" "nothing of the board's came back to it"
assert_eq "$(bl_got home | grep -c '^test/home/')" "$N" "nothing of home's came back home"

# The board reboots: a new handshake (its "0" reaches us while the old link is open),
# new ICE credentials; the site pairs again without being touched.
if esp_reboot_repair board 1 cabin 60; then
  pass "after the board's reboot the pair is back in $ESP_REPAIR_S s"
else
  fail "no second link after the board rebooted"
fi
assert_eq "$(bl_count 1 'the board started the handshake again')" 1 \
  "the site saw the board start over (one line)"
for ((i = 1; i <= N; i++)); do bl_pub 2 -t "test/cabin2/$i" -m "again $i"; done
for ((i = 1; i <= N; i++)); do bl_pub 1 -t "test/home2/$i" -m "again $i" -q 1; done
bl_wait_got home $((2 * N + N)) 20 || true
bl_wait_got cabin $((4 * N)) 20 || true
sleep 1
assert_eq "$(bl_got home | grep -c '^test/cabin2/')" "$N" "after the reboot the board's messages arrive"
assert_eq "$(bl_got cabin | grep -c '^test/home2/')" "$N" "after the reboot home's messages reach the board"
assert_ok "the daemon is still running" lab_running bl1
lab_finish
