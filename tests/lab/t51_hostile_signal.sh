#!/usr/bin/env bash
# A holder of the network secret (or a hostile broker that has it) must not be able to
# block signalling (issue 12, items 6 and 8). blforge (tests/lab/blforge.c) is that
# attacker: it reads everything on the signalling broker, opens it with the secret,
# changes it and seals it again under nonces of its choosing. It has no site key.
#   - bravo's "restart" to alpha is captured while alpha is away. The attacker then
#     sends junk under that message's nonce (a broken signature), and then the genuine
#     message: alpha refuses the junk and still accepts the genuine one (the nonce of
#     the junk used to be remembered before its signature was checked, which made the
#     genuine message a "replay");
#   - the captured message sent again under new nonces, verbatim, with its signature's
#     base64 text re-encoded, and with the other valid ECDSA signature (r, n - s): all
#     three are replays (they used to pass, keyed on the signature's text);
#   - alpha acted on bravo's restart once, the link opens once bravo runs, and neither
#     daemon logged anything derived from the secret;
#   - (item 7) a message too large for any offer, put into alpha's inbox, never reaches
#     alpha: its CONNECT says how much it takes (Maximum Packet Size), so the broker
#     keeps the rest from it;
#   - (item 5) someone who connects with alpha's client id pushes alpha off the broker
#     once; alpha comes back under a new random id, and the old one is worth nothing;
#   - bravo's request for a new session, re-sealed in envelope version 2 and delivered
#     once alpha is linked again, is taken; when bravo then stops, alpha asks it for a
#     new session in version 1 all the same (the profile chooses, not what came last).
set -euo pipefail
. "$(dirname "$0")/sites.sh"
FORGE=$(bl_tool blforge)
forge() { BL_SECRET=$BL_SECRET "$FORGE" "$@"; }

bl_lab_sites 2 cone
BL_LOG_LEVEL=debug bl_config 1 "test/# both 2" stun
bl_config 2 "test/# both 2" stun
INBOX=$(forge inbox alpha)

# publish_hex HEX: put a sealed payload into alpha's inbox, as anyone on the broker can.
n_pub=0
publish_hex() {
  n_pub=$((n_pub + 1))
  xxd -r -p <<<"$1" >"$LAB_DIR/forged$n_pub.bin"
  lab_exec_pub mosquitto_pub -h "$LAB_PUB_IP" -V 5 -q 1 -t "$INBOX" -f "$LAB_DIR/forged$n_pub.bin"
}

# The capture: bravo (the answerer) asks alpha for a session at start; alpha is not
# running, so only the attacker gets it.
lab_bg capture pub mosquitto_sub -h "$LAB_PUB_IP" -V 5 -q 1 -t "$INBOX" -F '%x'
sleep 0.5
bl_start 2
assert_ok "the attacker captured bravo's restart to alpha" lab_wait_for 20 grep -q . "$LAB_DIR/capture.log"
bl_stop 2
M=$(head -1 "$LAB_DIR/capture.log")
JSON=$(forge open "$INBOX" "$M")
assert_ok "the attacker can read it with the secret" grep -q '"type":"restart"' <<<"$JSON"

bl_start 1
assert_ok "alpha's signalling is up" lab_wait_for 20 grep -q 'signal: connected' "$(bl_log 1)"
# Until alpha shows it reads its inbox: garbage, refused as unopenable.
for ((k = 0; k < 50; k++)); do
  publish_hex "01$(head -c 40 /dev/urandom | xxd -p | tr -d '\n')"
  lab_wait_for 0.3 grep -q 'dropped a signalling message: cannot open it' "$(bl_log 1)" && break
done

# Item 6: junk under the genuine message's nonce, then the genuine message.
NONCE=$(forge nonce "$M")
publish_hex "$(forge mutate badsig <<<"$JSON" | forge seal "$INBOX" "$NONCE")"
assert_ok "alpha refuses the junk (not signed by bravo's key)" lab_wait_for 10 \
  grep -q "not signed by the pinned certificate of: bravo, presented certificate ${BL_FP[2]}, pinned ${BL_FP[2]}" "$(bl_log 1)"
publish_hex "$M"
assert_ok "alpha still accepts the genuine restart after the junk that shared its nonce" \
  lab_wait_for 10 grep -q 'signal: restart from bravo (session 00)' "$(bl_log 1)"

# Item 8: the same message under new nonces.
publish_hex "$(forge seal "$INBOX" <<<"$JSON")"
publish_hex "$(forge mutate b64nl <<<"$JSON" | forge seal "$INBOX")"
publish_hex "$(forge mutate highs <<<"$JSON" | forge seal "$INBOX")"
assert_ok "all three copies are refused as replays" lab_wait_for 10 \
  bash -c "[[ \$(grep -c 'dropped a signalling message: replayed: bravo' '$(bl_log 1)') -ge 3 ]]"
assert_eq "$(bl_count 1 'signal: restart from bravo')" 1 "alpha acted on bravo's restart once"
assert_eq "$(bl_count 1 'dropped a signalling message: replayed')" 3 "exactly three replays"

bl_start 2
assert_ok "the link opens" bl_wait_open 1 bravo 30
assert_eq "$(grep -ci 'secret id' "$(bl_log 1)" "$(bl_log 2)" | awk -F: '{ s += $NF } END { print s }')" 0 \
  "no daemon logs an id of the secret"

# The envelope version is not signed: a holder of the secret can re-seal a peer's genuine
# message in the other version. Alpha stops, and bravo asks it for a new session
# (captured: alpha is away). Alpha comes back and links again; then the attacker
# delivers that request re-sealed in version 2. Alpha takes it (bravo signed it). Bravo
# stops, and alpha asks it for a new session: in version 1, bravo's profile, not in the
# version of the last message that came from bravo (it used to be: an old site, or the
# page, would then never read alpha again).
lab_bg capture_b pub mosquitto_sub -h "$LAB_PUB_IP" -V 5 -q 1 -t "$(forge inbox bravo)" -F '%x'
gone_ms=$(date +%s%3N)
bl_stop 1
# The restart bravo sends when alpha's link goes down: no alpha that runs after it saw it.
fresh_restart() {
  local line json ts
  while read -r line; do
    json=$(forge open "$INBOX" "$line") || continue
    ts=$(grep -oE '"ts":[0-9]+' <<<"$json" | cut -d: -f2)
    if grep -q '"type":"restart"' <<<"$json" && ((ts > gone_ms)); then
      echo "$json"
      return 0
    fi
  done <"$LAB_DIR/capture.log"
  return 1
}
assert_ok "the attacker captured bravo's request for a new session" \
  lab_wait_for 30 fresh_restart
J2=$(fresh_restart)
bl_start 1
assert_ok "the link opens again" bl_wait_open 1 bravo 30 2
junk=$(bl_count 1 'dropped a signalling message: cannot open it')
publish_hex "01$(head -c 40 /dev/urandom | xxd -p | tr -d '\n')"
publish_hex "$(forge seal2 "$INBOX" <<<"$J2")"
assert_ok "alpha accepts the copy re-sealed in version 2" lab_wait_for 10 \
  grep -q "from bravo (session [^)]*), envelope v2" "$(bl_log 1)"
assert_eq "$(bl_count 1 'dropped a signalling message: cannot open it')" $((junk + 1)) \
  "only the junk before it was refused"
n_b=$(wc -l <"$LAB_DIR/capture_b.log")
bl_stop 2
assert_ok "alpha asks the stopped bravo for a new session" lab_wait_for 20 \
  bash -c "[[ \$(wc -l <'$LAB_DIR/capture_b.log') -gt $n_b ]]"
sealed=$(tail -n +"$((n_b + 1))" "$LAB_DIR/capture_b.log")
assert_eq "$(grep -vc '^01' <<<"$sealed" || true)" 0 "in version 1, as all before"
assert_eq "$(grep -vc '^01' "$LAB_DIR/capture_b.log" || true)" 0 "nothing alpha sealed for bravo was version 2"

# Item 7: 300 KiB of junk, then 40 bytes of junk. The broker handles them in order, so
# once alpha has refused the small one, the big one would have come before it.
seen=$(bl_count 1 'dropped a signalling message: cannot open it')
head -c 307200 /dev/urandom >"$LAB_DIR/big.bin"
lab_exec_pub mosquitto_pub -h "$LAB_PUB_IP" -V 5 -q 1 -t "$INBOX" -f "$LAB_DIR/big.bin"
publish_hex "01$(head -c 40 /dev/urandom | xxd -p | tr -d '\n')"
lab_wait_for 10 bash -c "[[ \$(grep -c 'dropped a signalling message: cannot open it' '$(bl_log 1)') -gt $seen ]]" || true
assert_eq "$(bl_count 1 'dropped a signalling message: cannot open it')" $((seen + 1)) \
  "the 300 KiB message never reached alpha, the small one did"

# Item 5: the client id alpha has now, from the broker's log, taken by someone else.
ids() { grep -oE "New client connected from $(lab_wan_ip 1):[0-9]+ as [^ ]+" "$LAB_DIR/pub-broker.log" | awk '{ print $NF }'; }
first=$(ids | tail -1)
lost=$(bl_count 1 'signal: connection lost')
lab_exec_pub timeout 5 mosquitto_sub -h "$LAB_PUB_IP" -i "$first" -t nothing -W 2 >/dev/null 2>&1 || true
assert_ok "the takeover pushes alpha off once" \
  lab_wait_for 10 bash -c "[[ \$(grep -c 'signal: connection lost' '$(bl_log 1)') -gt $lost ]]"
second=$first
for ((k = 0; k < 200; k++)); do
  second=$(ids | tail -1)
  [[ $second != "$first" ]] && break
  sleep 0.1
done
assert_ok "under a new client id ($first, then $second)" test "$second" != "$first"
lost=$(bl_count 1 'signal: connection lost')
lab_exec_pub timeout 5 mosquitto_sub -h "$LAB_PUB_IP" -i "$first" -t nothing -W 2 >/dev/null 2>&1 || true
sleep 1
assert_eq "$(bl_count 1 'signal: connection lost')" "$lost" "the old client id pushes nobody off any more"
lab_finish
