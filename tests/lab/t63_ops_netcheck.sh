#!/usr/bin/env bash
# `brokerless check` and `check --net` on the lab: a cone NAT is told from a symmetric
# one (the mapping seen from one socket toward two STUN servers), a right TURN password
# from a wrong one (an Allocate answered with an allocation or a 401), and the local
# and signalling brokers are found reachable, MQTT 5, letting the client ids in; a
# broker that is not there fails the check.
set -euo pipefail
. "$(dirname "$0")/sites.sh"

lab_up 2 cone,symmetric
lab_start_pub_broker
lab_start_coturn
# A second STUN server on another port of the public host: two destinations to compare
# the NAT's mappings toward (the lab's coturn has one address, so no OTHER-ADDRESS).
lab_bg stun2 pub turnserver -n --no-cli --no-tls --no-dtls --stun-only \
  --listening-ip "$LAB_PUB_IP" --listening-port 3479 --log-file stdout --simple-log \
  --pidfile "$LAB_DIR/stun2.pid" --userdb "$LAB_DIR/stun2db"
lab_wait_for 5 _lab_listening pub udp 3479 || fail "second STUN server did not start"
bl_sites 2
for i in 1 2; do
  bl_config "$i" "test/# both 1" turn
  sed -i "s/^\[ice\]$/[ice]\nstun = $LAB_PUB_IP:3479/" "$LAB_DIR/site$i.conf"
done

out=$("$BL_BIN" check -c "$LAB_DIR/site1.conf")
if [[ $out == *"ok   config"*"ok   identity: fingerprint ${BL_FP[1]}"* ]]; then pass "check: config and identity ok"; else fail "check: $out"; fi
sed 's/^state_dir = .*/state_dir = \/nonexistent\/typo/' "$LAB_DIR/site1.conf" >"$LAB_DIR/typo.conf"
out=$("$BL_BIN" check -c "$LAB_DIR/typo.conf" || true)
if [[ $out == *"FAIL identity: none in /nonexistent/typo: brokerless init"* ]]; then pass "check: a mistyped state_dir has no identity"; else fail "check typo: $out"; fi
err=$(lab_exec 1 "$BL_BIN" run -c "$LAB_DIR/typo.conf" 2>&1 || true)
if [[ $err == *"no identity in /nonexistent/typo"*"brokerless init"* && ! -e /nonexistent/typo ]]; then
  pass "run refuses a state_dir without identity and creates nothing"
else
  fail "run with a typo: $err"
fi

# check_net SITE CONF: `check --net` in site SITE's host; output in $net, status in $rc.
check_net() { rc=0; net=$(lab_exec "$1" "$BL_BIN" check --net -c "$2" 2>&1) || rc=$?; echo "$net"; }

check_net 1 "$LAB_DIR/site1.conf"
assert_eq "$rc" 0 "cone site: check --net passes"
assert_ok "local broker reachable, MQTT 5" grep -q "^ok   local broker 127.0.0.1:1883: reachable, MQTT 5" <<<"$net"
assert_ok "it grants the rules' subscriptions" grep -q "^ok   local broker 127.0.0.1:1883: grants the 2 subscriptions" <<<"$net"
assert_ok "the daemon's client id is let in" grep -q "^ok   local broker, client id brokerless-alpha: let in" <<<"$net"
assert_ok "signalling broker reachable" grep -q "^ok   signalling broker mqtt://$LAB_PUB_IP:1883: reachable" <<<"$net"
assert_ok "cone NAT: endpoint-independent mapping" grep -q "^ok   NAT mapping: endpoint-independent" <<<"$net"
assert_ok "TURN allocation succeeds with the right password" grep -q "^ok   TURN $LAB_PUB_IP:3478: allocation for user bl succeeded" <<<"$net"

check_net 2 "$LAB_DIR/site2.conf"
assert_ok "symmetric NAT: told apart, links go through TURN" grep -q "^ok   NAT mapping: symmetric" <<<"$net"

sed 's/^turn_password = .*/turn_password = wrong/' "$LAB_DIR/site1.conf" >"$LAB_DIR/wrongpw.conf"
check_net 1 "$LAB_DIR/wrongpw.conf"
assert_eq "$rc" 1 "a wrong TURN password fails the check"
assert_ok "it says 401, wrong user name or password" grep -q "^FAIL TURN $LAB_PUB_IP:3478: refused an allocation for user bl: error 401 (wrong user name or password)" <<<"$net"

lab_stop_site_broker 1
check_net 1 "$LAB_DIR/site1.conf"
assert_eq "$rc" 1 "with the local broker gone the check fails"
assert_ok "and says so" grep -q "^FAIL local broker 127.0.0.1:1883: " <<<"$net"

lab_finish
