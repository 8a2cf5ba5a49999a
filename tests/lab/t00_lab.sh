#!/usr/bin/env bash
# t00_lab.sh - proves the lab itself (tests/lab/lab.sh): the sites reach the internet
# through NAT, cannot reach each other directly, cone and symmetric NAT map ports as
# they should, the servers answer, faults can be injected and lifted, and lab_down
# leaves nothing behind. Run as root: bash tests/lab/t00_lab.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lab.sh
. "$HERE/lab.sh"

T0=$(_lab_now_us)
RULES_BEFORE=$(iptables-save 2>/dev/null | grep -v '^#' || true)

# Sites 1 and 2 behind cone NATs, site 3 behind a symmetric one.
lab_up 3 cone,cone,symmetric
PREFIX=$LAB_PREFIX
DIR=$LAB_DIR
assert_eq 7 "$(ip netns list | grep -c "^$PREFIX-")" "7 namespaces (pub + 3 routers + 3 hosts)"

# --- the internet is reachable, through NAT -------------------------------------------
lab_start_pub_broker
assert_ok "site 1 host opens TCP to the public host (198.18.0.1:1883)" \
  lab_tcp_send h1 "$LAB_PUB_IP" 1883 "" 2
assert_ok "site 1 host publishes to the public broker" \
  lab_exec 1 mosquitto_pub -h "$LAB_PUB_IP" -t lab/t00 -m hello -r -q 1
got=$(lab_exec_pub timeout -s KILL 5 mosquitto_sub -h "$LAB_PUB_IP" -t lab/t00 -C 1 || true)
assert_eq hello "$got" "the public host reads site 1's retained message"
assert_ok "public broker saw site 1 as its router's WAN address 198.18.0.11 (NAT)" \
  grep -q "New connection from 198.18.0.11:" "$DIR/pub-broker.log"
assert_fails "public broker never saw a private 198.19.x address" \
  grep -q "from 198\.19\." "$DIR/pub-broker.log"

# --- NAT mapping: cone keeps one external port for every destination, symmetric does not
lab_udp_listen pubudp pub 5001 5002 5003
dests=("$LAB_PUB_IP:5001" "$LAB_PUB_IP:5002" "$LAB_PUB_IP:5003")
lab_udp_send h1 40000 cone "${dests[@]}"
lab_udp_send h3 40000 symm "${dests[@]}"
if ! lab_wait_for 3 test "$(grep -c '^udp' "$DIR/pubudp.log")" -ge 6; then
  fail "6 datagrams reach the public host"
fi
cone_ports=$(awk '/ cone$/ { split($4, a, ":"); print a[1] ":" a[2] }' "$DIR/pubudp.log" | sort -u)
symm_ports=$(awk '/ symm$/ { split($4, a, ":"); print a[2] }' "$DIR/pubudp.log" | sort -u | wc -l)
symm_src=$(awk '/ symm$/ { split($4, a, ":"); print a[1] }' "$DIR/pubudp.log" | sort -u)
assert_eq "198.18.0.11:40000" "$cone_ports" "cone: one mapping 198.18.0.11:40000 for 3 destinations"
assert_eq 198.18.0.13 "$symm_src" "symmetric: source is router 3's WAN address"
if ((symm_ports >= 2)); then
  pass "symmetric: $symm_ports external ports for 3 destinations from one socket"
else
  fail "symmetric: expected different external ports per destination, got $symm_ports"
fi

# --- sites cannot reach each other directly --------------------------------------------
lab_tcp_listen h2tcp h2 7000
lab_udp_listen h2udp h2 7001
R2=$(lab_wan_ip 2)
assert_fails "site 1 cannot open TCP to router 2's WAN ($R2:7000): unsolicited, dropped" \
  lab_tcp_send h1 "$R2" 7000 from-site1 1
lab_udp_send h1 0 from-site1 "$R2:7001"
# 198.19.0.2 seen from site 1 is site 1's own host: the private address space is per site.
assert_fails "site 1's 198.19.0.2:7000 is itself, not site 2's host (refused)" \
  lab_tcp_send h1 "$LAB_HOST_IP" 7000 from-site1 1
lab_udp_send h1 0 from-site1 "$LAB_HOST_IP:7001"
# Positive control: the same listeners do hear site 2's own traffic, sent after the probes.
lab_tcp_send h2 127.0.0.1 7000 marker 2 || true
lab_udp_send h2 0 marker 127.0.0.1:7001
lab_wait_for 3 grep -q marker "$DIR/h2udp.log" || true
lab_wait_for 3 grep -q marker "$DIR/h2tcp.log" || true
assert_eq 1 "$(grep -c marker "$DIR/h2tcp.log" || true)" "site 2's TCP listener works (control)"
assert_eq 1 "$(grep -c marker "$DIR/h2udp.log" || true)" "site 2's UDP listener works (control)"
assert_eq 0 "$(grep -c from-site1 "$DIR/h2tcp.log" "$DIR/h2udp.log" | awk -F: '{ s += $2 } END { print s }')" \
  "nothing from site 1 arrived at site 2's host"
drops=$(lab_exec_router 2 iptables -L INPUT -v -n -x | awk '/DROP/ && /ctstate NEW/ { print $1 }')
if ((drops >= 2)); then pass "router 2 dropped $drops unsolicited NEW packets on its WAN"; else
  fail "router 2's INPUT NEW drop counted $drops packets"; fi
assert_eq 0 "$(lab_exec_router 2 grep -c "src=198.18.0.11 " /proc/net/nf_conntrack || true)" \
  "router 2 keeps no conntrack entry for site 1's unsolicited packets"

# --- coturn: STUN on 3478 shows the NAT's mapping; TURN allocates with bl:blpass -------
lab_start_coturn
stun=$(lab_exec 1 timeout 5 turnutils_stunclient "$LAB_PUB_IP" 2>&1 || true)
if grep -q "reflexive addr: 198.18.0.11:" <<<"$stun"; then
  pass "coturn STUN answers on 3478 with site 1's mapped address"
else
  fail "coturn STUN answer: $stun"
fi
turn=$(lab_exec 1 timeout 15 turnutils_uclient -u "$LAB_TURN_USER" -w "$LAB_TURN_PASS" \
  -n 1 -m 1 -y -c "$LAB_PUB_IP" 2>&1 || true)
if grep -q "tot_send_msgs=2, tot_recv_msgs=2" <<<"$turn"; then
  pass "coturn TURN relays between two allocations made with bl:blpass"
else
  fail "coturn TURN allocation/relay: $(tail -n 3 <<<"$turn")"
fi

# --- faults: WAN cut, loss -------------------------------------------------------------
lab_wan_cut 1
assert_fails "WAN cut: site 1 cannot reach the public host" lab_tcp_send h1 "$LAB_PUB_IP" 1883 "" 1
route=$(lab_exec_router 1 ip route show default)
assert_ok "WAN cut: router 1 still has its default route" grep -q "via 198.18.0.1" <<<"$route"
lab_wan_restore 1
assert_ok "WAN restored: site 1 reaches the public host" lab_tcp_send h1 "$LAB_PUB_IP" 1883 "" 2
lab_netem 1 "loss 100%"
assert_fails "loss 100%: site 1 cannot reach the public host" lab_tcp_send h1 "$LAB_PUB_IP" 1883 "" 1
lab_netem_clear 1
assert_ok "netem cleared: site 1 reaches the public host" lab_tcp_send h1 "$LAB_PUB_IP" 1883 "" 2
rtt0=$(lab_rtt 1 5) || rtt0=NA
rc=0
lab_netem 1 "delay 20ms" 2>/dev/null || rc=$?
case $rc in
  0)
    # netem where the kernel has it, else bldelay behind NFQUEUE: either way the
    # round trip from the site must grow by the delay.
    rtt1=$(lab_rtt 1 5) || rtt1=NA
    echo "rtt to the public host: $rtt0 ms plain, $rtt1 ms with delay 20ms"
    assert_ok "delay 20ms: the round trip grows by at least 19 ms" \
      awk -v a="$rtt0" -v b="$rtt1" 'BEGIN { exit !(b - a >= 19) }'
    ;;
  2) pass "delay unsupported here (no netem, no bldelay): lab_netem says so with status 2" ;;
  *) fail "lab_netem delay returned $rc" ;;
esac
lab_netem_clear 1
rtt2=$(lab_rtt 1 5) || rtt2=NA
assert_ok "delay cleared: the round trip is back under 10 ms ($rtt2 ms)" \
  awk -v b="$rtt2" 'BEGIN { exit !(b < 10) }'

# --- site brokers: one per site, on 127.0.0.1, no persistence ---------------------------
lab_start_site_broker 1
assert_ok "site 1 broker takes a retained message" \
  lab_exec 1 mosquitto_pub -h 127.0.0.1 -t lab/site -m one -r -q 1
assert_eq one "$(lab_exec 1 timeout -s KILL 5 mosquitto_sub -h 127.0.0.1 -t lab/site -C 1 || true)" \
  "site 1 broker gives it back"
assert_fails "site 2 has no broker of its own yet (127.0.0.1 is per site)" \
  lab_exec 2 mosquitto_pub -h 127.0.0.1 -t lab/site -m x
lab_restart_site_broker 1
assert_ok "site 1 broker runs again after a restart" lab_running site1-broker
assert_eq "" "$(lab_exec 1 timeout -s KILL 2 mosquitto_sub -h 127.0.0.1 -t lab/site -C 1 -W 1 2>/dev/null || true)" \
  "restarted broker has forgotten the retained message (no persistence)"
lab_stop_site_broker 1
assert_fails "site 1 broker stopped" lab_exec 1 mosquitto_pub -h 127.0.0.1 -t lab/site -m x

# --- teardown leaves nothing ------------------------------------------------------------
pids=$(cat "$DIR"/pids/* 2>/dev/null | awk '{ print $1 }')
lab_down
assert_eq 0 "$(ip netns list | grep -c "^$PREFIX-" || true)" "lab_down removed every $PREFIX-* namespace"
left=0
for p in $pids; do [[ -e /proc/$p ]] && left=$((left + 1)); done
assert_eq 0 "$left" "lab_down stopped every process it started"
assert_fails "lab_down removed the lab dir" test -e "$DIR"
assert_eq "$RULES_BEFORE" "$(iptables-save 2>/dev/null | grep -v '^#' || true)" \
  "root namespace iptables unchanged"

secs=$(lab_elapsed "$T0")
if awk -v s="$secs" 'BEGIN { exit !(s < 60) }'; then pass "t00 took ${secs}s (< 60 s)"; else
  fail "t00 took ${secs}s"; fi
lab_finish
