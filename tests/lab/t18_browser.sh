#!/usr/bin/env bash
# A browser joins as a peer (issue 16): Debian's headless chromium, driven by puppeteer-core
# (tests/lab/webdriver/driver.mjs) through the page of web/ served by `brokerless web`,
# in site 2's host behind its own NAT; the site "alpha" in site 1's host behind another.
# The signalling broker (mosquitto on the public host) has an MQTT listener for the
# daemon and a WebSockets one for the page. In order: the page makes its key, the site
# pins it (`brokerless peer add` with the line the page shows: a [peer browser1] with
# profile = browser, applied by the running daemon), the
# page pairs and links; N messages each way, counted exactly at both ends; signalling
# signed with a wrong key is refused and counted, message for message; an answer whose
# signed SDP names another DTLS certificate is refused in the handshake, session for
# session; the site's daemon restarts and the page links again by itself, and messages
# cross both ways again; allowed only the TURN relay, the page links through the lab's
# coturn; with the site's broker away, the page's messages wait unacknowledged, go again
# on the next channel and reach the broker once each when it is back. The page asks
# nothing of any other origin.
# BL_UPDATE_SCREENSHOT=1 copies the page's screenshot to docs/browser-peer.png.
set -euo pipefail
HERE=$(dirname "$0")
. "$HERE/sites.sh"
SRC=${BL_SRC:-$(cd "$HERE/../.." && pwd)}
WEBDRIVER=$SRC/tests/lab/webdriver
N=20
WS_PORT=9001

# stop: a step failed that the rest needs.
stop() {
  lab_finish || true
  exit 1
}

for need in /usr/bin/chromium "$SRC/web/node_modules/mqtt/dist/mqtt.min.js" "$WEBDRIVER/node_modules/puppeteer-core"; do
  [[ -e $need ]] || { echo "t18: missing $need (run scripts/deps.sh)"; exit 1; }
done

lab_up 2 cone
# The signalling broker, with a WebSockets listener beside the MQTT one (mosquitto 2.0.11
# starts a WebSockets listener only beside another listener).
{
  lab_broker_conf "error warning notice" "listener 1883 $LAB_PUB_IP" "listener $WS_PORT" "protocol websockets"
  echo "connection_messages true"
} >"$LAB_DIR/pub-broker.conf"
lab_bg pub-broker pub mosquitto -c "$LAB_DIR/pub-broker.conf"
if lab_wait_for 5 _lab_listening pub tcp 1883 && lab_wait_for 5 _lab_listening pub tcp $WS_PORT; then
  pass "the signalling broker listens for MQTT and for MQTT over WebSockets"
else
  fail "the signalling broker did not start"
  stop
fi
lab_start_coturn
bl_sites 1
# A broker that keeps sessions across its own restarts (step 8).
bl_persistent_broker 1
CONF=$LAB_DIR/site1.conf
{
  BL_LOG_LEVEL=debug bl_config_head 1
  echo
  bl_config_ice stun
} >"$CONF"
bl_start 1
lab_wait_for 10 grep -q "signal: connected" "$(bl_log 1)" || fail "the site's signalling did not connect"

# The page, served in the browser's host, and its user.
lab_bg web h2 "$BL_BIN" web --listen 127.0.0.1:8089 --dir "$SRC/web"
lab_wait_for 5 lab_exec 2 curl -sf -o /dev/null http://127.0.0.1:8089/ || fail "brokerless web does not serve the page"
mkdir -p "$LAB_DIR/ctl"
lab_bg driver h2 node "$WEBDRIVER/driver.mjs" --url http://127.0.0.1:8089/ --ctl "$LAB_DIR/ctl" \
  --shot "$LAB_DIR/browser-peer.png" --profile "$LAB_DIR/chromium" --name browser1 --n "$N" \
  --site-line "brokerless-peer name=alpha fingerprint=${BL_FP[1]} signal=mqtt://$LAB_PUB_IP:1883" \
  --secret "$BL_SECRET" --broker "ws://$LAB_PUB_IP:$WS_PORT" --stun "$LAB_PUB_IP:3478" \
  --turn "$LAB_PUB_IP:3478" --turn-user "$LAB_TURN_USER" --turn-pass "$LAB_TURN_PASS"
DLOG=$LAB_DIR/driver.log
# driver_wait STEP TIMEOUT: wait for the driver's "driver: STEP" line (or its error).
driver_wait() {
  lab_wait_for "$2" bash -c "grep -q '^driver: $1' '$DLOG' || grep -q '^driver: error' '$DLOG'"
  if grep -q '^driver: error' "$DLOG"; then
    fail "the driver stopped: $(grep -m1 -A3 '^driver: error' "$DLOG" | tr '\n' ' ')"
    return 1
  fi
  grep -q "^driver: $1" "$DLOG" || { fail "no '$1' from the driver within $2 s"; return 1; }
}
driver_line() { grep -m1 "^driver: $1" "$DLOG"; }
# stat_of STEP KEY: a counter of the page, from the JSON the driver printed at STEP.
stat_of() { driver_line "$1" | sed -E "s/.*\"$2\":([0-9]+).*/\\1/"; }
go() { touch "$LAB_DIR/ctl/go-$1"; }

# 1. Pairing: the page made its key; the site pins it as a browser peer, live, with the
# line the page shows.
driver_wait fingerprint 60 || stop
FP=$(driver_line fingerprint | awk '{ print $3 }')
if [[ $FP =~ ^([0-9A-F]{2}:){31}[0-9A-F]{2}$ ]]; then pass "the page shows its key's fingerprint"; else fail "fingerprint: '$FP'"; fi
driver_wait pairline 10 || stop
PAIRLINE=$(driver_line pairline | sed 's/^driver: pairline //')
assert_eq "$PAIRLINE" "brokerless-peer name=browser1 fingerprint=$FP profile=browser" "the page shows its pairing line"
# As the page says: peer add with the rules, which the running daemon applies at once.
added=$("$BL_BIN" peer add -c "$CONF" "$PAIRLINE" --rule 'sensors/# out 1' --rule 'web/# in 1' 2>&1) ||
  fail "peer add: $added"
if grep -q '^profile = browser$' "$CONF"; then pass "peer add wrote a [peer browser1] with profile = browser"; else fail "no profile = browser in $CONF"; fi
bl_sub 1 sitesub 'web/#' -F '%t %p %q'
go pair
if driver_wait open 90 && bl_wait_open 1 browser1 30; then
  pass "the page and the site link ($(bl_path 1 browser1) path)"
else
  stop
fi
st=$("$BL_BIN" status --json -c "$CONF" 2>&1 | tr -d ' \t\n' || true)
if grep -qE '"name":"browser1".*"state":"open"|"state":"open".*"name":"browser1"' <<<"$st" && grep -q '"profile":"browser"' <<<"$st"; then
  pass "brokerless status shows the browser peer open, with its profile"
else
  fail "status: $st"
fi
assert_eq "$(bl_count 1 'signal: .* from browser1 \(session [0-9a-f]+\), envelope v2')" \
  "$(bl_count 1 'signal: .* from browser1 \(session')" "everything the browser sent came in envelope v2"

# 2. Browser -> site.
driver_wait published 60 || stop
bl_wait_got sitesub "$N" 30 || true
assert_eq "$(bl_got sitesub | grep -c '^web/from-browser/')" "$N" "the site's broker got each of the page's $N messages once"
assert_eq "$(bl_got sitesub | grep -c ' 1$')" "$N" "at QoS 1"
assert_eq "$(stat_of published acked)" "$N" "the site acknowledged each of them"

# 3. Site -> browser.
for ((i = 1; i <= N; i++)); do bl_pub 1 -t "sensors/temp/$i" -m "$((20 + i)).5" -q 1; done
go site-published
driver_wait received 60 || stop
assert_eq "$(stat_of received msgIn)" "$N" "the page got each of the site's $N messages once"
assert_eq "$(driver_line received | awk '{ print $NF }')" "$N" "and shows $N topics under sensors/#"

# 4. A wrong signing key: refused by the site, counted, each one.
driver_wait 'wrongkey sent' 90 || stop
K=$(driver_line 'wrongkey sent' | awk '{ print $4 }')
refused_pattern='not signed by the pinned certificate of: browser1 \(browser\), presented key [0-9A-F:]+, pinned [0-9A-F:]+: the pinned key, but the signature does not verify'
lab_wait_for 20 bash -c "(( \$(grep -cE '$refused_pattern' '$(bl_log 1)') >= $K ))" || true
assert_eq "$(bl_count 1 "$refused_pattern")" "$K" "the site refused, counted and logged each of the $K messages (restart, answer, candidates) signed with a wrong key"
go wrongkey-checked
driver_wait 'open again' 90 || stop
pass "with its own key again, the page links again"

# 5. A DTLS certificate that is not the one the signed answer names. The page signs
# answers naming other certificates (listed by the driver); each one the site took (not
# superseded by a newer offer first) must have its handshake refused.
driver_wait 'baddtls answers' 120 || stop
FPS=$(driver_line 'baddtls answers' | sed -E 's/.* fps //')
# bad_dtls KIND: how many answers naming one of FPS the site took (took) or refused in
# the DTLS handshake (refused).
bad_dtls() {
  local f n=0 pat
  for f in ${FPS//,/ }; do
    if [[ $1 == took ]]; then pat="peer browser1: browser's signed description names DTLS certificate $f"; else
      pat="peer browser1: dtls: refusing peer certificate: expected fingerprint $f"; fi
    n=$((n + $(grep -c "$pat" "$(bl_log 1)" || true)))
  done
  echo "$n"
}
bad_dtls_settled() { local t; t=$(bad_dtls took); ((t >= 1 && $(bad_dtls refused) >= t)); }
lab_wait_for 30 bad_dtls_settled || true
T=$(bad_dtls took)
if ((T >= 1)); then pass "the site took $T answer(s) whose signed SDP names another DTLS certificate"; else fail "the site took none of the page's bad answers ($FPS)"; fi
assert_eq "$(bad_dtls refused)" "$T" "the site refused the DTLS certificate in each of them"
lab_wait_for 90 bash -c "(( \$(grep -c '^driver: open again' '$DLOG') >= 2 ))" &&
  pass "with a matching answer, the page links again" || fail "no link after the bad DTLS certificate"

# 6. The site restarts; the page comes back by itself.
driver_wait ready-restart 30 || stop
opens_before=$(bl_count 1 'peer browser1: link open via')
bl_stop 1
bl_start 1
go restarted
if driver_wait reopened 120 && bl_wait_open 1 browser1 60 $((opens_before + 1)); then
  pass "after the site's restart the page linked again"
fi
driver_wait published-after 60 || stop
bl_wait_got sitesub $((2 * N)) 30 || true
assert_eq "$(bl_got sitesub | grep -c '^web/after-restart/')" "$N" "after the restart the site got the page's $N messages once"
for ((i = 1; i <= N; i++)); do bl_pub 1 -t "sensors/after/$i" -m "after $i" -q 1; done
go site-published-after
driver_wait received-after 60 || stop
assert_eq "$(stat_of received-after msgIn)" "$((2 * N))" "the page got the site's $N messages after the restart, once each"
# 7. The page allowed only the TURN relay: it links through the lab's coturn.
opens_before=$(bl_count 1 'peer browser1: link open via')
if driver_wait relayed 90 && bl_wait_open 1 browser1 30 $((opens_before + 1)) && [[ $(bl_path 1 browser1) == relay ]]; then
  pass "with only the TURN relay allowed, the page links through it (path relay at the site)"
else
  fail "no relayed link (last path: $(bl_path 1 browser1))"
fi
# 8. The site's broker is away while the page publishes: nothing is acknowledged; the
# page links again and sends them again, marked dup; once the broker is back, each
# reaches it exactly once and is acknowledged.
# A subscriber with a session that outlives it: it subscribes, leaves, and comes back
# after the broker to what the broker kept for it.
bl_sub 1 sitesub8 'web/while-down/#' -c -i t18-sitesub8 -F '%t %p'
lab_kill sitesub8
lab_stop_site_broker 1
go broker-down
driver_wait resent 120 || stop
# The site acknowledges only what its broker has: none of the N was, so all N go again.
assert_eq "$(stat_of resent resent)" "$N" "on its next channel the page sent its $N unacknowledged messages again"
lab_restart_site_broker 1
lab_bg sitesub8b h1 mosquitto_sub -h 127.0.0.1 -V 5 -q 2 -c -i t18-sitesub8 -t 'web/while-down/#' -F '%t %p'
go broker-up
driver_wait acked-after-broker 120 || stop
lab_wait_for 30 bash -c "(( \$(cat '$LAB_DIR/sitesub8.log' '$LAB_DIR/sitesub8b.log' 2>/dev/null | grep -c '^web/while-down/') >= $N ))" || true
got8=$(cat "$LAB_DIR/sitesub8.log" "$LAB_DIR/sitesub8b.log" 2>/dev/null | grep '^web/while-down/' || true)
echo "site: $(grep -c . <<<"$got8") messages of web/while-down; its duplicates counter: $("$BL_BIN" status --json -c "$CONF" 2>/dev/null | tr -d ' \t\n' | grep -o '"duplicates":[0-9]*' | head -1)"
assert_eq "$(grep -c . <<<"$got8")" "$N" "once the broker was back, it got the page's $N messages"
assert_eq "$(sort -u <<<"$got8" | grep -c .)" "$N" "each exactly once, resends included"
assert_eq "$(stat_of acked-after-broker acked)" "$(($(stat_of relayed acked) + N))" "and the site acknowledged each of them"
driver_wait done 30 || true
assert_eq "$(driver_line 'foreign requests' | awk '{ print $4 }')" 0 "the page asked nothing of any other origin"
assert_ok "the daemon is still running" lab_running bl1
if [[ ${BL_UPDATE_SCREENSHOT:-} == 1 && -s $LAB_DIR/browser-peer.png ]]; then
  cp "$LAB_DIR/browser-peer.png" "$SRC/docs/browser-peer.png"
fi
lab_finish
