#!/usr/bin/env bash
# Watching a running site: the Prometheus endpoint parses with the Prometheus client
# library's parser and its counters move with traffic by exactly what was sent; the
# control socket answers garbage and oversize requests with an error and goes on, and
# refuses another user (by the socket's mode, and by its credentials when the mode lets
# it through); the retained status says "online", "offline" after a kill -9 (the Last
# Will), "stopped" after a clean stop; systemd's notify socket (a listener standing in for
# systemd) gets READY with a STATUS, watchdog pings, RELOADING and READY on SIGHUP, and
# STOPPING.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
PY=/usr/bin/python3

bl_lab 2 cone "test/# both 1"
printf '\n[metrics]\nlisten = 127.0.0.1:9469\n' >>"$LAB_DIR/site1.conf"
bl_up 2
lab_wait_for 10 grep -q "serving http://127.0.0.1:9469/metrics" "$(bl_log 1)" || true

# scrape: the values of brokerless_peer_messages_sent_total and _bytes_sent_total for
# bravo, after checking the whole text parses and the content type is Prometheus'.
scrape() {
  # shellcheck disable=SC2016
  lab_exec 1 $PY -c '
import urllib.request
from prometheus_client.parser import text_string_to_metric_families
r = urllib.request.urlopen("http://127.0.0.1:9469/metrics", timeout=5)
assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers["Content-Type"]
v = {}
for fam in text_string_to_metric_families(r.read().decode()):
    for s in fam.samples:
        v[(s.name, tuple(sorted(s.labels.items())))] = s.value
b = (("peer", "bravo"),)
print(int(v[("brokerless_peer_messages_sent_total", b)]), int(v[("brokerless_peer_bytes_sent_total", b)]),
      int(v[("brokerless_peer_up", b)]), int(v[("brokerless_peer_state", b + (("state", "open"),))]))
'
}
before=$(scrape) || fail "the metrics do not parse"
echo "metrics before: $before"
read -r sent0 bytes0 up0 open0 <<<"$before"
assert_eq "$up0 $open0" "1 1" "metrics: bravo up, state open"
bl_sub 2 subB 'test/m' -F '%p'
for k in $(seq 1 50); do echo "m$k"; done | lab_exec_stdin 1 mosquitto_pub -h 127.0.0.1 -V 5 -q 1 -t test/m -l
bl_wait_got subB 50 20 || true
assert_eq "$(bl_got subB | wc -l)" 50 "bravo got the 50 messages"
after=$(scrape) || fail "the metrics do not parse"
echo "metrics after: $after"
read -r sent1 bytes1 _ _ <<<"$after"
assert_eq "$((sent1 - sent0))" 50 "brokerless_peer_messages_sent_total grew by the 50 messages sent"
if ((bytes1 > bytes0 + 50 * 2)); then pass "brokerless_peer_bytes_sent_total grew ($bytes0 -> $bytes1)"; else fail "bytes $bytes0 -> $bytes1"; fi
code=$(lab_exec 1 $PY -c '
import urllib.request, urllib.error
try: urllib.request.urlopen("http://127.0.0.1:9469/other", timeout=5); print(200)
except urllib.error.HTTPError as e: print(e.code)')
assert_eq "$code" 404 "another path is 404"

# ---- the control socket: garbage, oversize, other users ----
sock=$LAB_DIR/state1/control.sock
assert_eq "$(stat -c %a "$sock")" 600 "the control socket is owner-only (0600)"
# shellcheck disable=SC2016
ask='
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode("latin-1"))
if sys.argv[3] == "eof": s.shutdown(socket.SHUT_WR)
a = b""
while not a.endswith(b"\n"):
    d = s.recv(65536)
    if not d: break
    a += d
print(a.decode().strip())'
check_refused() { # REQUEST MODE TEXT MSG
  local a
  a=$($PY -c "$ask" "$sock" "$1" "$2")
  if [[ $a == *'"ok":false'* && $a == *"$3"* ]]; then pass "$4: $a"; else fail "$4: '$a'"; fi
}
check_refused $'frobnicate\n' open "unknown command" "an unknown command is answered with an error"
check_refused "$(head -c 1000 /dev/zero | tr '\0' x)" open "longer than 255 bytes" "an oversize request is answered with an error"
check_refused $'\x01\x02status\n' open "byte 0x01" "binary garbage is answered with an error"
check_refused "status" eof "without a newline" "a request cut short is answered with an error"
check_refused $'ping\n' open "needs a peer name" "ping without a peer is answered with an error"
st=$($PY -c "$ask" "$sock" $'status\n' open)
if [[ $st == *'"ok":true'* && $st == *'"site":"alpha"'* ]]; then pass "the daemon still answers after the garbage"; else fail "status after garbage: $st"; fi

user=blctl$RANDOM
useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
# shellcheck disable=SC2016
conn='
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect:", e.strerror); sys.exit(0)
s.sendall(b"status\n")
print(s.recv(65536).decode().strip())'
denied_fs=$(runuser -u "$user" -- $PY -c "$conn" "$sock" 2>&1 || true)
chmod 711 "$LAB_DIR" "$LAB_DIR/state1"
chmod 666 "$sock"
denied_cred=$(runuser -u "$user" -- $PY -c "$conn" "$sock" 2>&1 || true)
chmod 700 "$LAB_DIR" "$LAB_DIR/state1"
chmod 600 "$sock"
userdel "$user"
assert_eq "$denied_fs" "connect: Permission denied" "another user cannot reach the socket (its mode)"
if [[ $denied_cred == *'"ok":false'*'refused: this socket serves only uid 0 and root'* ]]; then
  pass "another user let through by the mode is refused by its credentials: $denied_cred"
else
  fail "other user with the mode open: '$denied_cred'"
fi
assert_fails "the throwaway user is gone" id "$user"
assert_ok "the refusal is logged" grep -q "WARN control: refused: this socket serves only" "$(bl_log 1)"

# ---- the retained status: online, offline after kill -9, stopped after a clean stop ----
assert_eq "$(bl_retained 1 brokerless/alpha/status)" online "alpha's status reads online"
peer=$(bl_retained 2 brokerless/bravo/peers/alpha)
# shellcheck disable=SC2016
keys=$($PY -c 'import json,sys; p=json.loads(sys.argv[1]); print(p["state"], all(k in p for k in ("since","local","remote","last_error","messages_out","bytes_in","drops")))' "$peer")
assert_eq "$keys" "open True" "bravo's peer topic: state, since, both endpoints, last error, counters"
bl_stop 1 KILL
if lab_wait_for 45 bash -c "[[ \$(ip netns exec $LAB_PREFIX-h1 timeout -s KILL 4 mosquitto_sub -h 127.0.0.1 -t brokerless/alpha/status --retained-only -C 1 -W 2 2>/dev/null) == offline ]]"; then
  pass "after kill -9 alpha's status reads offline (its Last Will), within the keep-alive"
else
  fail "alpha's status after kill -9: $(bl_retained 1 brokerless/alpha/status)"
fi
bl_stop 2 TERM
assert_eq "$(bl_retained 2 brokerless/bravo/status)" stopped "after a clean stop bravo's status reads stopped"
st=$(bl_retained 2 brokerless/bravo/peers/alpha)
if [[ $st == *'"state":"stopped"'* ]]; then pass "and its peer topic says stopped"; else fail "peer topic after stop: $st"; fi

# ---- systemd's notify socket: READY with a STATUS, watchdog pings, RELOADING, STOPPING ----
# shellcheck disable=SC2016
lab_bg notify h2 $PY -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    print(s.recv(4096).decode().replace("\n", "|"), flush=True)' "$LAB_DIR/notify.sock"
lab_wait_for 5 test -S "$LAB_DIR/notify.sock" || fail "notify listener"
mv "$(bl_log 2)" "$LAB_DIR/bl2-first.log"
lab_bg bl2 h2 env NOTIFY_SOCKET="$LAB_DIR/notify.sock" WATCHDOG_USEC=1000000 "$BL_BIN" run -c "$LAB_DIR/site2.conf"
lab_wait_for 10 grep -q "^READY=1" "$LAB_DIR/notify.log" || true
assert_ok "READY=1 with a STATUS line" grep -qE "^READY=1\|STATUS=[0-9]+ of 1 peers open; local broker" "$LAB_DIR/notify.log"
lab_wait_for 10 bash -c "[[ \$(grep -c '^WATCHDOG=1' '$LAB_DIR/notify.log') -ge 2 ]]" || true
if (($(grep -c '^WATCHDOG=1' "$LAB_DIR/notify.log") >= 2)); then pass "watchdog pings from the loop (WATCHDOG_USEC set)"; else fail "no watchdog pings"; fi
kill -HUP "$(lab_pid bl2)"
lab_wait_for 10 grep -q "^RELOADING=1" "$LAB_DIR/notify.log" || true
lab_wait_for 10 bash -c "[[ \$(grep -c '^READY=1' '$LAB_DIR/notify.log') -ge 2 ]]" || true
assert_eq "$(grep -oE '^(RELOADING|READY)=1' "$LAB_DIR/notify.log" | tr '\n' ' ')" "READY=1 RELOADING=1 READY=1 " "SIGHUP: RELOADING, then READY again"
bl_stop 2 TERM
assert_ok "STOPPING=1 at a clean stop" grep -q "^STOPPING=1" "$LAB_DIR/notify.log"

lab_finish
