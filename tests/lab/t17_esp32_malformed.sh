#!/usr/bin/env bash
# The ESP32 mode's parsers under fire on a running site: the seed corpora of the fuzz
# targets are replayed at alpha, the handshakes and descriptions from the public broker
# (anyone there can publish on the board's topic), the datagrams from the board itself
# over the ICE link, while bravo streams QoS 1 messages to alpha. Every malformed input is
# counted and logged, nothing crashes, the board's link stays up, and bravo's messages all
# arrive, once each.
set -euo pipefail
HERE=$(dirname "$0")
. "$HERE/sites.sh" # loads lab.sh too
. "$HERE/esp32.sh"
CORPUS=${BL_SRC:-$(cd "$HERE/../.." && pwd)}/fuzz/corpus

esp_lab 3
BL_LOG_LEVEL=debug esp_config 1 "$(esp_site_section 2 'test/# both 1')$(esp_peer_section cabin peer2 'test/# both 1')"
esp_config 2 "$(esp_site_section 1 'test/# both 1')"
mkdir -p "$LAB_DIR/datagrams"
cp "$CORPUS"/fuzz_espframe/* "$LAB_DIR/datagrams/"
bl_start 1
bl_start 2
esp_start board 3 peer1 --inject-dir "$LAB_DIR/datagrams"
if bl_wait_open 1 bravo 30 && bl_wait_open 1 cabin 60; then pass "both links open"; else fail "links did not open"; fi

N=300
bl_sub 1 s1 'test/#' -F '%t %p'
lab_bg stream h2 bash -c "seq 1 $N | mosquitto_pub -h 127.0.0.1 -V 5 -q 1 -t test/bravo -l"

# Handshakes and descriptions on the board's topic. Valid steps ("0", "1", "2") are left
# out: a "0" is what a rebooted board says, and anyone may say it (docs/CONFIG.md); a
# valid description is out of place in an open session and counted with the bad ones.
sent_sig=0
for f in "$CORPUS"/fuzz_esphandshake/bad_* "$CORPUS"/fuzz_espdesc/*; do
  if [[ -s $f ]]; then
    lab_exec_pub mosquitto_pub -h "$LAB_PUB_IP" -q 1 -t /topic/serverless_mqtt1 -f "$f"
  else
    lab_exec_pub mosquitto_pub -h "$LAB_PUB_IP" -q 1 -t /topic/serverless_mqtt1 -n
  fi
  sent_sig=$((sent_sig + 1))
done
kill -USR2 "$(lab_pid board)"
bad_frames=$(find "$LAB_DIR/datagrams" -name 'bad_*' | wc -l)
esp_wait board 'injected [0-9]+ datagrams' 10 || fail "the board did not inject"

# The running counts in alpha's log (debug level: every drop is a line).
last_count() { grep -aE "$1" "$(bl_log 1)" | sed -nE 's/.*\(([0-9]+) so far\)$/\1/p' | tail -1; }
lab_wait_for 20 bash -c "[[ \$(grep -acE 'peer cabin: dropped a [a-z ]+ on /topic/serverless_mqtt1' '$(bl_log 1)') -ge $sent_sig ]]" || true
lab_wait_for 20 bash -c "[[ \$(grep -acE 'peer cabin: dropped a bad frame' '$(bl_log 1)') -ge $bad_frames ]]" || true
assert_eq "$(last_count 'peer cabin: dropped a [a-z ]+ on /topic/serverless_mqtt1')" "$sent_sig" \
  "every handshake and description that does not belong was counted and logged ($sent_sig)"
assert_eq "$(last_count 'peer cabin: dropped a bad frame')" "$bad_frames" \
  "every malformed datagram was counted and logged ($bad_frames)"

bl_wait_got s1 "$N" 60 || true
sleep 1
assert_eq "$(bl_got s1 | grep '^test/bravo ' | sort -u | wc -l)" "$N" "bravo's $N messages all arrived"
assert_eq "$(bl_got s1 | grep -c '^test/bravo ')" "$N" "... each once"
assert_ok "alpha is still running" lab_running bl1
assert_eq "$(bl_count 1 'peer cabin: link down')" 0 "the board's link stayed up"
bl_pub 3 -t test/board/after -m alive
bl_wait_got s1 $((N + 1)) 10 || true
assert_eq "$(bl_got s1 | grep -c '^test/board/after alive')" 1 "the board's messages still arrive"
lab_finish
