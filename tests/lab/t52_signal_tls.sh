#!/usr/bin/env bash
# Signalling over TLS (issue 12, item 11), through the daemon's config and logs only.
# The signalling broker is a mosquitto with two TLS listeners, certificates made here
# with the openssl command: 8883 presents a certificate for 198.18.0.1 (and signal.lab)
# signed by the lab's CA, 8884 one signed by the same CA for another host.
#   - alpha trusts another CA: it does not connect, and says why (the issuer);
#   - bravo trusts the right CA but reaches the broker on 8884, whose certificate names
#     another host: it does not connect either, and says the address does not match;
#   - a password over plain mqtt:// is warned about at start (and still works);
#   - with the right CA on 8883 both connect (the password over TLS is not warned about)
#     and the link between them opens.
set -euo pipefail
. "$(dirname "$0")/sites.sh"

lab_up 2 cone
lab_start_coturn
D=$LAB_DIR/tls
mkdir -p "$D"
ossl() { openssl "$@" >/dev/null 2>&1; }
ec_req() { ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "$@"; }
ec_req -x509 -days 2 -keyout "$D/ca.key" -out "$D/ca.pem" -subj /CN=brokerless-lab-ca
ec_req -x509 -days 2 -keyout "$D/other-ca.key" -out "$D/other-ca.pem" -subj /CN=someone-else
server_cert() { # NAME SAN
  ec_req -keyout "$D/$1.key" -out "$D/$1.csr" -subj "/CN=$1"
  printf 'subjectAltName=%s\n' "$2" >"$D/$1.ext"
  ossl x509 -req -in "$D/$1.csr" -CA "$D/ca.pem" -CAkey "$D/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 2 -extfile "$D/$1.ext" -out "$D/$1.pem"
}
server_cert right "DNS:signal.lab,IP:$LAB_PUB_IP"
server_cert wronghost "DNS:elsewhere.lab,IP:198.18.0.77"
[[ -s $D/right.pem && -s $D/wronghost.pem ]] && pass "certificates made with openssl" || fail "openssl failed"

cat >"$LAB_DIR/tls-broker.conf" <<CONF
per_listener_settings false
allow_anonymous true
persistence false
log_dest stderr
log_type all
user root
listener 1883 $LAB_PUB_IP
listener 8883 $LAB_PUB_IP
certfile $D/right.pem
keyfile $D/right.key
listener 8884 $LAB_PUB_IP
certfile $D/wronghost.pem
keyfile $D/wronghost.key
CONF
lab_bg pub-broker pub mosquitto -c "$LAB_DIR/tls-broker.conf"
assert_ok "the TLS broker listens" lab_wait_for 5 _lab_listening pub tcp 8884

bl_sites 2
# signal_conf SITE URL [CAFILE] [USER]: site SITE's config with this [signal] broker.
signal_conf() {
  bl_config "$1" "test/# both 2" stun
  local extra="url = $2"
  [[ -z ${3:-} ]] || extra+=$'\n'"cafile = $3"
  [[ -z ${4:-} ]] || extra+=$'\n'"username = $4"$'\n'"password = pw-$4"
  awk -v x="$extra" '/^url = / { print x; next } { print }' "$LAB_DIR/site$1.conf" >"$LAB_DIR/site$1.tmp"
  mv "$LAB_DIR/site$1.tmp" "$LAB_DIR/site$1.conf"
}
# refused SITE WHAT WHY: the site logged, at WARN or ERROR, that its signalling
# connection failed on TLS, with a reason matching WHY (OpenSSL's verify error: what a
# user needs to tell a wrong CA from a wrong host name), and never connected.
refused() {
  local log line
  log=$(bl_log "$1")
  if lab_wait_for 20 grep -qiE '(WARN|ERROR) signal: .*TLS' "$log"; then
    line=$(grep -m1 -iE '(WARN|ERROR) signal: .*TLS' "$log")
    echo "${BL_NAMES[$1]}: ${line#*signal: }"
    assert_ok "${BL_NAMES[$1]} refuses $2, and says why" grep -qiE "$3" <<<"$line"
  else
    fail "${BL_NAMES[$1]} logged no TLS failure ($2)"
  fi
  assert_eq "$(bl_count "$1" 'signal: connected')" 0 "${BL_NAMES[$1]} never connected with $2"
}

signal_conf 1 "mqtts://$LAB_PUB_IP:8883" "$D/other-ca.pem"
signal_conf 2 "mqtts://$LAB_PUB_IP:8884" "$D/ca.pem"
bl_start 1
bl_start 2
refused 1 "a certificate from a CA it does not trust" 'certificate.*(issuer|unknown ca|untrusted|self.signed)'
refused 2 "a certificate for another host name" '(host ?name|IP address) mismatch'
bl_stop 1
bl_stop 2

signal_conf 1 "mqtt://$LAB_PUB_IP:1883" "" lab
bl_start 1
assert_ok "alpha connects over plain mqtt://" lab_wait_for 20 grep -q 'signal: connected' "$(bl_log 1)"
assert_ok "and warns that its password goes in the clear" \
  grep -q "WARN config: \[signal\] password goes to $LAB_PUB_IP:1883 without TLS" "$(bl_log 1)"
assert_eq "$(grep -c 'pw-lab' "$(bl_log 1)" || true)" 0 "the password itself is not logged"
bl_stop 1

mv "$(bl_log 1)" "$LAB_DIR/bl1-plain.log"
mv "$(bl_log 2)" "$LAB_DIR/bl2-refused.log"
signal_conf 1 "mqtts://$LAB_PUB_IP:8883" "$D/ca.pem" lab
signal_conf 2 "mqtts://$LAB_PUB_IP" "$D/ca.pem"
bl_start 1
bl_start 2
assert_ok "with the right CA and host alpha connects" lab_wait_for 20 grep -q "signal: connected to $LAB_PUB_IP:8883" "$(bl_log 1)"
assert_ok "and bravo (mqtts:// means port 8883)" lab_wait_for 20 grep -q "signal: connected to $LAB_PUB_IP:8883" "$(bl_log 2)"
assert_eq "$(bl_count 1 'password goes to')" 0 "a password over TLS is not warned about"
assert_ok "the link opens over TLS signalling" bl_wait_open 1 bravo 30
lab_finish
