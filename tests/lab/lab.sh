# shellcheck shell=bash disable=SC2016
# (SC2016: the perl programs below are single-quoted on purpose.)
# lab.sh - a simulated internet in network namespaces, for brokerless' lab tests.
#
# Source it from a test script (which runs as root, with `set -euo pipefail`):
#   . "$(dirname "$0")/lab.sh"
#   lab_up 2 cone            # public host + 2 NATed sites; installs the cleanup trap
#   lab_start_pub_broker; lab_start_coturn
#   lab_exec 1 mosquitto_pub -h "$LAB_PUB_IP" -t x -m y && pass "site 1 publishes"
#   lab_finish               # "N passed, N failed"; nonzero when anything failed
#
# Topology and rules: docs/LAB.md. Addresses are only ever from 198.18.0.0/15:
#   public host  198.18.0.1/24 on bridge br0 (the internet, 198.18.0.0/24)
#   router i     wan 198.18.0.(10+i)/24, lan 198.19.0.1/24, NAT (cone or symmetric)
#   host i       eth0 198.19.0.2/24, default via 198.19.0.1 (the same subnet on every site)
# Namespaces are "blab<ID>-pub", "blab<ID>-r<i>", "blab<ID>-h<i>" (ID: 4 random hex digits),
# so parallel and stale runs never collide; a run deletes only what it recorded in its lab
# dir. Functions taking a namespace (NS) accept the short names pub, r<i>, h<i>.
#
# Functions that may fail on purpose return nonzero and never exit: call them under `if`,
# `!` or `||` so that `set -e` does not end the script.

LAB_PUB_IP=198.18.0.1
LAB_LAN_GW=198.19.0.1
LAB_HOST_IP=198.19.0.2
LAB_PRIVATE_RANGE=198.19.0.0-198.19.255.255
LAB_TURN_USER=bl
LAB_TURN_PASS=blpass
LAB_TURN_REALM=brokerless
LAB_MAX_SITES=4
LAB_LIB=$(realpath "${BASH_SOURCE[0]}")

LAB_DIR=""
LAB_ID=""
LAB_PREFIX=""
LAB_N=0
LAB_PASS=${LAB_PASS:-0}
LAB_FAIL=${LAB_FAIL:-0}

# ---------------------------------------------------------------- small helpers

_lab_log() { echo "lab: $*" >&2; }

# Now in microseconds (bash 5 EPOCHREALTIME), for deadlines and timings.
_lab_now_us() { local t=$EPOCHREALTIME; echo "${t/[.,]/}"; }

# lab_elapsed T0_US: seconds (one decimal) since T0_US, a value of _lab_now_us.
lab_elapsed() { awk -v a="$1" -v b="$(_lab_now_us)" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }

# lab_wan_ip SITE: the public (WAN) address of site SITE's router.
lab_wan_ip() { echo "198.18.0.$((10 + $1))"; }

# _lab_ns NAME: full namespace name for pub / r<i> / h<i> (a full name passes through).
_lab_ns() {
  case $1 in
    pub | r[1-9] | h[1-9]) echo "$LAB_PREFIX-$1" ;;
    *) echo "$1" ;;
  esac
}

_lab_check_site() {
  if [[ ! $1 =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > LAB_N)); then
    _lab_log "no site '$1' (sites are 1..$LAB_N)"
    return 1
  fi
}

# _lab_in NS cmd...: run cmd in namespace NS (short or full name), stdin closed.
_lab_in() {
  local ns
  ns=$(_lab_ns "$1")
  shift
  ip netns exec "$ns" "$@" </dev/null
}

# lab_exec_stdin SITE cmd...: like lab_exec, with the caller's standard input.
lab_exec_stdin() { _lab_check_site "$1" || return 1; ip netns exec "$(_lab_ns "h$1")" "${@:2}"; }

# _lab_sysctl NS KEY VALUE: write /proc/sys inside NS (no procps needed; /proc/sys/net
# is per network namespace).
_lab_sysctl() { _lab_in "$1" sh -c "echo $3 > /proc/sys/${2//.//}"; }

# _lab_listening NS tcp|udp PORT: true when something listens on PORT in NS.
_lab_listening() {
  local flag=-Hltn
  [[ $2 == udp ]] && flag=-Hlun
  [[ -n $(_lab_in "$1" ss "$flag" "sport = :$3") ]]
}

# ---------------------------------------------------------------- assertions

# pass MSG / fail MSG: count and print one result.
pass() { LAB_PASS=$((LAB_PASS + 1)); echo "ok   - $*"; }
fail() { LAB_FAIL=$((LAB_FAIL + 1)); echo "FAIL - $*"; }

# assert_eq A B MSG: passes when A and B are the same string.
assert_eq() {
  if [[ $1 == "$2" ]]; then pass "$3"; else fail "$3 ('$1' differs from '$2')"; fi
}

# assert_ok MSG cmd...: passes when cmd succeeds. assert_fails MSG cmd...: when it fails.
assert_ok() {
  local msg=$1
  shift
  if "$@"; then pass "$msg"; else fail "$msg (command failed: $*)"; fi
}
assert_fails() {
  local msg=$1
  shift
  if "$@"; then fail "$msg (command succeeded: $*)"; else pass "$msg"; fi
}

# lab_finish: print "N passed, N failed"; returns nonzero if anything failed (or nothing
# was checked at all).
lab_finish() {
  echo "$LAB_PASS passed, $LAB_FAIL failed"
  ((LAB_FAIL == 0 && LAB_PASS > 0))
}

# lab_wait_for TIMEOUT_S cmd...: run cmd (output discarded) every 50 ms until it succeeds.
# Returns 0 on success, 1 when TIMEOUT_S (may be fractional) passed first.
lab_wait_for() {
  local limit deadline
  limit=$(awk -v t="$1" 'BEGIN { printf "%d", t * 1e6 }')
  shift
  deadline=$(($(_lab_now_us) + limit))
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if (($(_lab_now_us) > deadline)); then return 1; fi
    sleep 0.05
  done
}

# ---------------------------------------------------------------- building the lab

# _lab_new_ns NAME: create a namespace (recorded first, so cleanup finds even a half-made
# one), with loopback up and IPv6 off (no DAD delays, no link-local candidates).
_lab_new_ns() {
  echo "$1" >>"$LAB_DIR/netns"
  ip netns add "$1" || return 1
  ip -n "$1" link set lo up || return 1
  _lab_sysctl "$1" net.ipv6.conf.all.disable_ipv6 1
  _lab_sysctl "$1" net.ipv6.conf.default.disable_ipv6 1
}

# _lab_router_rules SITE cone|symmetric: NAT and filtering of site SITE's router.
_lab_router_rules() {
  local r=r$1 random=()
  [[ $2 == symmetric ]] && random=(--random-fully)
  ip netns exec "$LAB_PREFIX-$r" iptables-restore <<EOF
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:LAB_DELAY - [0:0]
-A PREROUTING -j LAB_DELAY
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan -j MASQUERADE ${random[*]}
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:LAB_CUT - [0:0]
:LAB_LOSS - [0:0]
-A INPUT -j LAB_CUT
-A INPUT -i wan -m conntrack --ctstate NEW -j DROP
-A FORWARD -j LAB_CUT
-A FORWARD -j LAB_LOSS
-A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i wan -j DROP
-A OUTPUT -j LAB_CUT
COMMIT
EOF
}

# _lab_site_up SITE MODE: router r<SITE> and host h<SITE>, wired to the public bridge.
_lab_site_up() {
  local i=$1 pub=$LAB_PREFIX-pub r=$LAB_PREFIX-r$1 h=$LAB_PREFIX-h$1
  _lab_new_ns "$r" && _lab_new_ns "$h" || return 1
  _lab_sysctl "$r" net.ipv4.ip_forward 1
  ip -n "$r" link add wan type veth peer name "s$i" netns "$pub" &&
    ip -n "$pub" link set "s$i" master br0 up &&
    ip -n "$r" addr add "$(lab_wan_ip "$i")/24" dev wan &&
    ip -n "$r" link set wan up &&
    ip -n "$r" route add default via "$LAB_PUB_IP" &&
    ip -n "$r" link add lan type veth peer name eth0 netns "$h" &&
    ip -n "$r" addr add "$LAB_LAN_GW/24" dev lan &&
    ip -n "$r" link set lan up &&
    ip -n "$h" addr add "$LAB_HOST_IP/24" dev eth0 &&
    ip -n "$h" link set eth0 up &&
    ip -n "$h" route add default via "$LAB_LAN_GW" || return 1
  _lab_router_rules "$i" "$2"
}

# lab_up N MODE: build the public host and N sites (2..4). MODE is cone or symmetric for
# every site, or a comma list with one mode per site ("cone,symmetric"). Creates the lab
# dir ($LAB_DIR), installs the teardown trap on EXIT INT TERM HUP (replacing any), and
# returns 0 when everything is up (on failure it tears down what it made and returns 1).
lab_up() {
  local n=${1:-2} modes=${2:-cone} i mode
  local -a per_site
  if ((EUID != 0)); then _lab_log "must run as root"; return 1; fi
  if [[ -n $LAB_DIR ]]; then _lab_log "a lab is already up ($LAB_DIR)"; return 1; fi
  if [[ ! $n =~ ^[0-9]+$ ]] || ((n < 2 || n > LAB_MAX_SITES)); then
    _lab_log "lab_up: N must be 2..$LAB_MAX_SITES"; return 1
  fi
  IFS=, read -r -a per_site <<<"$modes"
  for ((i = 1; i <= n; i++)); do
    mode=${per_site[i - 1]:-${per_site[${#per_site[@]} - 1]}}
    [[ $mode == cone || $mode == symmetric ]] || { _lab_log "bad NAT mode '$mode'"; return 1; }
    per_site[i - 1]=$mode
  done
  LAB_DIR=$(mktemp -d /tmp/blab.XXXXXX) || return 1
  mkdir -p "$LAB_DIR/pids"
  : >"$LAB_DIR/netns"
  trap '_lab_on_exit' EXIT
  trap '_lab_on_signal 130' INT
  trap '_lab_on_signal 143' TERM
  trap '_lab_on_signal 129' HUP
  # A fresh id whose namespaces do not exist (a stale run's are left alone).
  while :; do
    LAB_ID=$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n')
    LAB_PREFIX=blab$LAB_ID
    [[ -e /run/netns/$LAB_PREFIX-pub ]] || break
  done
  LAB_N=$n
  printf 'LAB_ID=%s\nLAB_PREFIX=%s\nLAB_N=%s\n' "$LAB_ID" "$LAB_PREFIX" "$n" >"$LAB_DIR/lab.env"
  printf '#!/bin/bash\n# Tears down a lab kept with BL_LAB_KEEP=all.\n. %q\nlab_attach %q && BL_LAB_KEEP= lab_down\n' \
    "$LAB_LIB" "$LAB_DIR" >"$LAB_DIR/down.sh"
  local pub=$LAB_PREFIX-pub
  if ! { _lab_new_ns "$pub" &&
    ip -n "$pub" link add br0 type bridge &&
    ip -n "$pub" addr add "$LAB_PUB_IP/24" dev br0 &&
    ip -n "$pub" link set br0 up; }; then
    _lab_log "could not build the public host"; lab_down 1; return 1
  fi
  for ((i = 1; i <= n; i++)); do
    if ! _lab_site_up "$i" "${per_site[i - 1]}"; then
      _lab_log "could not build site $i"; lab_down 1; return 1
    fi
  done
  _lab_log "up: $n sites (${per_site[*]}), prefix $LAB_PREFIX, dir $LAB_DIR"
}

# lab_attach DIR: adopt a lab dir made by another shell (used by DIR/down.sh).
lab_attach() {
  [[ -f $1/lab.env ]] || { _lab_log "no lab in $1"; return 1; }
  LAB_DIR=$1
  # shellcheck disable=SC1091
  . "$1/lab.env"
}

# ---------------------------------------------------------------- tearing down

_lab_on_exit() {
  local rc=$?
  lab_down "$rc"
  return "$rc"
}

_lab_on_signal() {
  trap - EXIT INT TERM HUP
  _lab_log "interrupted, tearing down"
  lab_down 1
  exit "$1"
}

# lab_dump_logs: print the tail of every log of this lab and the routers' rule counters.
lab_dump_logs() {
  [[ -n $LAB_DIR && -d $LAB_DIR ]] || return 0
  local f i
  for f in "$LAB_DIR"/*.log; do
    [[ -e $f ]] || continue
    echo "---- ${f##*/} (last 30 lines) ----"
    tail -n 30 "$f"
  done
  for ((i = 1; i <= LAB_N; i++)); do
    echo "---- router $i: iptables counters ----"
    _lab_in "r$i" iptables-save -c 2>/dev/null | grep -E '^\[[1-9]|^-A|^\*' || true
  done
}

# lab_down [RC]: stop every process the lab started (TERM, then KILL), delete the lab's
# namespaces and its dir. Prints the logs first when RC is nonzero or a check failed.
# BL_LAB_KEEP=1 keeps the dir; BL_LAB_KEEP=all keeps everything running and prints how
# to tear it down later (DIR/down.sh). Safe to call twice.
lab_down() {
  local rc=${1:-0} f name ns
  [[ -n $LAB_DIR && -d $LAB_DIR ]] || { LAB_DIR=""; return 0; }
  if ((rc != 0 || LAB_FAIL > 0)); then lab_dump_logs >&2; fi
  if [[ ${BL_LAB_KEEP:-} == all ]]; then
    _lab_log "kept running: namespaces $LAB_PREFIX-*, dir $LAB_DIR; tear down with: bash $LAB_DIR/down.sh"
    LAB_DIR=""
    return 0
  fi
  for f in "$LAB_DIR"/pids/*; do
    [[ -e $f ]] && lab_kill "${f##*/}" TERM
  done
  if [[ -f $LAB_DIR/netns ]]; then
    while read -r name; do
      [[ -n $name && $name == blab* ]] || continue
      ip netns del "$name" 2>/dev/null || true
    done < <(tac "$LAB_DIR/netns")
  fi
  if [[ -f $LAB_DIR/mounts ]]; then
    while read -r name; do
      [[ -n $name && $name == "$LAB_DIR"/* ]] && umount -l "$name" 2>/dev/null || true
    done < <(tac "$LAB_DIR/mounts")
  fi
  if [[ ${BL_LAB_KEEP:-} == 1 ]]; then
    _lab_log "lab dir kept: $LAB_DIR"
  else
    rm -rf -- "$LAB_DIR"
  fi
  LAB_DIR=""
  return 0
}

# lab_tmpfs DIR SIZE: a small filesystem (tmpfs, SIZE as mount(8) takes it: 4m) on DIR
# inside the lab dir, unmounted by lab_down. Grow it with
# `mount -o remount,size=S DIR`.
lab_tmpfs() {
  [[ $1 == "$LAB_DIR"/* ]] || { echo "lab_tmpfs: $1 is not inside $LAB_DIR" >&2; return 1; }
  mkdir -p "$1" && mount -t tmpfs -o "size=$2,mode=0700" blab-tmpfs "$1" &&
    echo "$1" >>"$LAB_DIR/mounts"
}

# ---------------------------------------------------------------- running things

# lab_exec SITE cmd...: run cmd in site SITE's host namespace (stdin is /dev/null).
lab_exec() { _lab_check_site "$1" || return 1; _lab_in "h$1" "${@:2}"; }

# lab_exec_router SITE cmd...: run cmd in site SITE's router namespace.
lab_exec_router() { _lab_check_site "$1" || return 1; _lab_in "r$1" "${@:2}"; }

# lab_exec_pub cmd...: run cmd in the public host's namespace.
lab_exec_pub() { _lab_in pub "$@"; }

# _lab_pid_ok PID NS: PID is alive and still in namespace NS (guards against a reused PID
# when a kept lab is torn down later).
_lab_pid_ok() {
  kill -0 "$1" 2>/dev/null || return 1
  [[ $(ip netns identify "$1" 2>/dev/null) == "$2" ]]
}

# lab_bg NAME NS cmd...: start cmd in the background in namespace NS (pub, r<i>, h<i>),
# in its own session, stdout+stderr appended to $LAB_DIR/NAME.log, PID in
# $LAB_DIR/pids/NAME. Returns at once; wait for readiness with lab_wait_for. Refuses a
# NAME that is still running. A shell function cannot be started this way (it runs via
# `ip netns exec`); wrap it in `bash -c` if needed.
lab_bg() {
  local name=$1 ns pid
  ns=$(_lab_ns "$2")
  shift 2
  [[ -n $LAB_DIR ]] || { _lab_log "lab_bg: no lab"; return 1; }
  if [[ -e $LAB_DIR/pids/$name ]]; then
    if lab_running "$name"; then _lab_log "lab_bg: '$name' already runs"; return 1; fi
    rm -f "$LAB_DIR/pids/$name" # it died on its own: NAME may be reused
  fi
  # Without job control a background child is no group leader, so setsid does not fork:
  # $! is the process itself, and the leader of its own process group.
  setsid ip netns exec "$ns" "$@" </dev/null >>"$LAB_DIR/$name.log" 2>&1 &
  pid=$!
  disown "$pid" # no "Terminated" job notices when we stop it
  echo "$pid $ns" >"$LAB_DIR/pids/$name"
}

# lab_pid NAME: print the PID of a process started with lab_bg.
lab_pid() {
  local pid
  [[ -f $LAB_DIR/pids/$1 ]] && read -r pid _ <"$LAB_DIR/pids/$1" && echo "$pid"
}

# lab_kill NAME [SIGNAL]: signal the process group of NAME (default TERM), wait up to 5 s
# for it to exit (then KILL), forget it. Returns 1 if NAME is unknown.
lab_kill() {
  local name=$1 sig=${2:-TERM} pid ns
  [[ -f $LAB_DIR/pids/$name ]] || return 1
  read -r pid ns <"$LAB_DIR/pids/$name"
  rm -f "$LAB_DIR/pids/$name"
  _lab_pid_ok "$pid" "$ns" || return 0
  kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
  if ! lab_wait_for 5 _lab_gone "$pid"; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    lab_wait_for 2 _lab_gone "$pid" || true
  fi
  return 0
}

# A zombie counts as gone (bash reaps it at its next foreground command).
_lab_gone() {
  [[ ! -e /proc/$1 ]] || [[ $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) == Z ]]
}

# lab_running NAME: true while the process NAME is alive.
lab_running() {
  local pid ns
  [[ -f $LAB_DIR/pids/$1 ]] || return 1
  read -r pid ns <"$LAB_DIR/pids/$1"
  _lab_pid_ok "$pid" "$ns" && ! _lab_gone "$pid"
}

# ---------------------------------------------------------------- servers

# lab_broker_conf LOG_TYPES LINE...: print a lab mosquitto config: the LINEs (its
# listeners), then anonymous clients, no persistence, and a log to stderr of each of
# LOG_TYPES (a space-separated list, e.g. "all" or "error warning").
lab_broker_conf() {
  local t
  printf '%s\n' "${@:2}" "allow_anonymous true" "persistence false" "log_dest stderr"
  for t in $1; do echo "log_type $t"; done
}

# lab_start_pub_broker: the signalling broker, mosquitto on 198.18.0.1:1883 in the public
# host (anonymous, no persistence, logs every client address to pub-broker.log). Returns
# when it listens.
lab_start_pub_broker() {
  local conf=$LAB_DIR/pub-broker.conf
  {
    lab_broker_conf all "listener 1883 $LAB_PUB_IP"
    echo "connection_messages true"
  } >"$conf"
  lab_bg pub-broker pub mosquitto -c "$conf" || return 1
  lab_wait_for 5 _lab_listening pub tcp 1883 || { _lab_log "pub broker did not start"; return 1; }
}

# lab_start_coturn: STUN+TURN on 198.18.0.1:3478 (UDP and TCP), long-term credentials
# bl:blpass in realm "brokerless", no TLS/DTLS, no CLI, no config file; relaying to the
# sites' private range is denied (see WEBRTC-NOTES "Symmetric NAT with TURN"). Log:
# coturn.log; its pid file and (unused) SQLite user db live in the lab dir too, so the
# system's /var/lib/turn is never touched. ("socket: Protocol not supported" in the log
# is coturn probing SCTP, which this kernel lacks: harmless.) Returns when both UDP and
# TCP listen.
lab_start_coturn() {
  lab_bg coturn pub turnserver -n --no-cli --no-tls --no-dtls \
    --listening-ip "$LAB_PUB_IP" --relay-ip "$LAB_PUB_IP" --listening-port 3478 \
    --lt-cred-mech --user "$LAB_TURN_USER:$LAB_TURN_PASS" --realm "$LAB_TURN_REALM" \
    --denied-peer-ip="$LAB_PRIVATE_RANGE" --no-multicast-peers \
    --log-file stdout --simple-log --pidfile "$LAB_DIR/coturn.pid" \
    --userdb "$LAB_DIR/turndb" || return 1
  if ! lab_wait_for 5 _lab_listening pub udp 3478 || ! lab_wait_for 5 _lab_listening pub tcp 3478; then
    _lab_log "coturn did not start"
    return 1
  fi
}

# lab_start_site_broker SITE: the site's own broker, mosquitto on 127.0.0.1:1883 in the
# site host (anonymous, no persistence). Log: site<SITE>-broker.log. Returns when it
# accepts connections.
lab_start_site_broker() {
  _lab_check_site "$1" || return 1
  local conf=$LAB_DIR/site$1-broker.conf
  {
    lab_broker_conf "error warning notice information" "listener 1883 127.0.0.1"
    echo "${LAB_BROKER_EXTRA:-}"
  } >"$conf"
  lab_bg "site$1-broker" "h$1" mosquitto -c "$conf" || return 1
  lab_wait_for 5 _lab_listening "h$1" tcp 1883 || { _lab_log "site $1 broker did not start"; return 1; }
}

# lab_stop_site_broker SITE: stop it; returns when the port is closed.
lab_stop_site_broker() {
  _lab_check_site "$1" || return 1
  lab_kill "site$1-broker" TERM || return 1
  lab_wait_for 5 eval "! _lab_listening h$1 tcp 1883"
}

# lab_restart_site_broker SITE: stop (if running) and start again; retained messages are
# gone afterwards (no persistence), as after a real broker restart without a store.
lab_restart_site_broker() {
  _lab_check_site "$1" || return 1
  if [[ -f $LAB_DIR/pids/site$1-broker ]]; then lab_stop_site_broker "$1" || return 1; fi
  lab_start_site_broker "$1"
}

# ---------------------------------------------------------------- link faults

# lab_wan_cut SITE: drop every packet in or out of the router's WAN (the link stays up and
# the routes stay; conntrack mappings survive, as in a real outage).
lab_wan_cut() {
  _lab_check_site "$1" || return 1
  lab_wan_restore "$1" &&
    _lab_in "r$1" iptables -A LAB_CUT -i wan -j DROP &&
    _lab_in "r$1" iptables -A LAB_CUT -o wan -j DROP
}

# lab_wan_restore SITE: undo lab_wan_cut.
lab_wan_restore() { _lab_check_site "$1" || return 1; _lab_in "r$1" iptables -F LAB_CUT; }

# lab_netem SITE "SPEC": impair the router's WAN. SPEC words:
#   loss P%     drop each forwarded packet with probability P, both directions.
#               With a delay held by bldelay (below), per datagram: that bldelay also
#               draws the loss of what goes out, with --segment (the kernel cuts a
#               segmented send, a TCP super-packet or a UDP_SEGMENT run of up to 64
#               datagrams, into its datagrams first, as a real link carries them), and a
#               second one, "bldelayin<SITE>" on queue 100 + SITE with no delay, draws
#               it for what comes in from the WAN (LAB_LOSS: -i wan -o lan, established
#               flows, -j NFQUEUE).
#               Otherwise (loss alone, or with sch_netem) an iptables statistic match
#               in FORWARD, per packet as the router sees it: a segmented send that
#               crossed a veth whole is dropped, or not, as one.
#   rate R      shape WAN egress and LAN egress (= WAN ingress) to R (tc tbf, "2mbit")
#   delay D [J] one-way delay (and jitter) of what the router sends out of its WAN, as
#               a netem on wan's egress would do: a ping from the site's host gains D
#               of round trip, traffic into the site is not held. Times as tc takes
#               them (20ms, 1s, 500us; no unit: microseconds).
#               With sch_netem: tc netem on wan (rate R then goes into the netem).
#               Without (this lab's kernel): bldelay (tests/lab/bldelay.c) holds the
#               packets that raw-table chain LAB_DELAY queues (what comes in from the
#               LAN for the WAN: PREROUTING -i lan ! -d LAB_LAN_GW -j NFQUEUE) and lets
#               them go D ms later, in order (jitter never reorders, unlike netem's).
#               The raw table runs before conntrack, so a held packet has no conntrack
#               entry yet: the second packet of a new flow cannot overtake the first
#               one's NAT mapping (queued in FORWARD it could, and get another port);
#               NAT sees the delayed stream as netem's egress would. One bldelay per
#               site for the delay, "bldelay<SITE>" (log bldelay<SITE>.log, emptied at
#               each start), and with a loss one more, "bldelayin<SITE>" (above); each
#               started before its rule and stopped by lab_netem_clear and lab_down. No
#               --queue-bypass: if a bldelay dies the site goes dark instead of
#               silently losing its delay or loss. Returns 2 (nothing impaired) when
#               neither works: no netem and no bldelay binary, or a bldelay cannot bind
#               its queue.
# Replaces any earlier impairment of that site. Returns 0 when all of SPEC is in place.
lab_netem() {
  _lab_check_site "$1" || return 1
  local site=$1 r=r$1 loss="" rate="" delay=()
  local -a w
  read -r -a w <<<"$2"
  while ((${#w[@]})); do
    case ${w[0]} in
      loss) loss=${w[1]%\%}; w=("${w[@]:2}"); awk -v l="$loss" 'BEGIN { exit !(l + 0 == 0) }' && loss="" ;;
      rate) rate=${w[1]}; w=("${w[@]:2}") ;;
      delay)
        delay=("${w[1]}"); w=("${w[@]:2}")
        if ((${#w[@]})) && [[ ${w[0]} =~ ^[0-9.]+(us|ms|s)$ ]]; then delay+=("${w[0]}"); w=("${w[@]:1}"); fi
        ;;
      *) _lab_log "lab_netem: unknown '${w[0]}' (loss P%, rate R, delay D [J])"; return 1 ;;
    esac
  done
  lab_netem_clear "$site"
  local tbf=1
  if ((${#delay[@]})); then
    local extra=()
    [[ -n $rate ]] && extra=(rate "$rate")
    if _lab_in "$r" tc qdisc replace dev wan root netem delay "${delay[@]}" "${extra[@]}" 2>/dev/null; then
      tbf=0
      [[ -n $rate ]] && { _lab_in "$r" tc qdisc replace dev lan root tbf rate "$rate" burst 64kb latency 100ms || return 1; }
    else
      _lab_delay_start "$site" "$loss" "${delay[@]}" || return 2
      if [[ -n $loss ]]; then
        _lab_loss_in_start "$site" "$loss" || { lab_netem_clear "$site"; return 2; }
        loss=""
      fi
    fi
  fi
  if [[ -n $rate ]] && ((tbf)); then
    _lab_in "$r" tc qdisc replace dev wan root tbf rate "$rate" burst 64kb latency 100ms &&
      _lab_in "$r" tc qdisc replace dev lan root tbf rate "$rate" burst 64kb latency 100ms || return 1
  fi
  if [[ -n $loss ]]; then
    local p
    p=$(awk -v l="$loss" 'BEGIN { printf "%.4f", l / 100 }')
    _lab_in "$r" iptables -A LAB_LOSS -i wan -m statistic --mode random --probability "$p" -j DROP &&
      _lab_in "$r" iptables -A LAB_LOSS -o wan -m statistic --mode random --probability "$p" -j DROP ||
      return 1
  fi
}

# _lab_delay_bin: the bldelay of the build under test: $BL_DELAY_BIN, else tests/bldelay
# in $BL_BUILD (set by CTest), else next to $BL_BIN's brokerless (so build-asan's tests
# use build-asan's), else the default build dir.
_lab_delay_bin() {
  if [[ -n ${BL_DELAY_BIN:-} ]]; then echo "$BL_DELAY_BIN"
  elif [[ -n ${BL_BUILD:-} ]]; then echo "$BL_BUILD/tests/bldelay"
  elif [[ -n ${BL_BIN:-} ]]; then echo "$(dirname "$BL_BIN")/tests/bldelay"
  else echo "$(dirname "$LAB_LIB")/../../build/tests/bldelay"; fi
}

# _lab_time_ms T: a tc time (20ms, 1.5s, 500us, 300 = 300us) in milliseconds.
_lab_time_ms() {
  awk -v t="$1" 'BEGIN {
    if (!match(t, /^[0-9]+(\.[0-9]+)?/)) exit 1
    v = substr(t, 1, RLENGTH); u = substr(t, RLENGTH + 1)
    if (u == "ms" || u == "msec") f = 1; else if (u == "s" || u == "sec") f = 1000
    else if (u == "us" || u == "usec" || u == "") f = 0.001; else exit 1
    printf "%.3f", v * f }'
}

# _lab_delay_start SITE LOSS D [J]: bldelay in router SITE, then the rule that feeds it
# (queue number = SITE; queues are per namespace anyway). LOSS (percent, or empty for
# none) is drawn there per datagram (--segment). Returns 1, with nothing left behind,
# when the delay cannot be had this way.
_lab_delay_start() {
  local site=$1 r=r$1 bin d j=0 name=bldelay$1 lossargs=()
  [[ -n $2 ]] && lossargs=(--loss-pct "$2" --segment)
  shift
  bin=$(_lab_delay_bin)
  if [[ ! -x $bin ]]; then
    _lab_log "lab_netem: no sch_netem in this kernel and no bldelay at $bin: delay unsupported"
    return 1
  fi
  d=$(_lab_time_ms "$2") || { _lab_log "lab_netem: bad delay '$2'"; return 1; }
  if [[ -n ${3:-} ]]; then j=$(_lab_time_ms "$3") || { _lab_log "lab_netem: bad jitter '$3'"; return 1; }; fi
  _lab_bldelay_up "$name" "$r" "$site" --delay-ms "$d" --jitter-ms "$j" "${lossargs[@]}" || return 1
  if ! _lab_in "$r" iptables -t raw -A LAB_DELAY -i lan ! -d "$LAB_LAN_GW" -j NFQUEUE --queue-num "$site"; then
    _lab_log "lab_netem: iptables has no NFQUEUE here: delay unsupported"
    lab_kill "$name" TERM || true
    return 1
  fi
  _lab_log "lab_netem: site $site WAN egress delayed ${d} ms (jitter ${j} ms)${lossargs:+, ${lossargs[1]} % lost per datagram,} by bldelay (no sch_netem)"
}

# _lab_loss_in_start SITE LOSS: what router SITE forwards in from its WAN to its LAN loses
# LOSS % per datagram: a bldelay without delay on queue 100 + SITE, fed from LAB_LOSS.
# Only what the next rule of FORWARD would accept anyway (established flows) is queued:
# an accepted verdict ends the filter table for the packet. Returns 1, with nothing left
# behind, when it cannot be had.
_lab_loss_in_start() {
  local site=$1 r=r$1 q=$((100 + $1)) name=bldelayin$1
  _lab_bldelay_up "$name" "$r" "$q" --delay-ms 0 --loss-pct "$2" --segment || return 1
  if ! _lab_in "$r" iptables -A LAB_LOSS -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j NFQUEUE --queue-num "$q"; then
    _lab_log "lab_netem: iptables has no NFQUEUE here: no per-datagram loss on site $site's WAN in"
    lab_kill "$name" TERM || true
    return 1
  fi
}

# _lab_bldelay_up NAME ROUTER QUEUE ARG...: the bldelay of the build under test as lab
# process NAME in ROUTER, bound to QUEUE (bldelay ARG... besides). Its log is emptied
# first, so that a "ready" line from an earlier start does not count. Returns 1, with
# the process stopped, when it is not running with its queue bound within 5 s.
_lab_bldelay_up() {
  local name=$1 r=$2 q=$3
  shift 3
  : >"$LAB_DIR/$name.log"
  lab_bg "$name" "$r" "$(_lab_delay_bin)" --queue "$q" "$@" || return 1
  if ! lab_wait_for 5 grep -q "bldelay: queue $q ready" "$LAB_DIR/$name.log" || ! lab_running "$name"; then
    _lab_log "lab_netem: $name did not bind queue $q: delay or loss unsupported ($(tail -n 3 "$LAB_DIR/$name.log" | tr '\n' ' '))"
    lab_kill "$name" TERM || true
    return 1
  fi
}

# lab_netem_clear SITE: remove every impairment set by lab_netem. The queue rule goes
# before bldelay (which then lets every packet it still holds go), so nothing in flight
# is dropped for want of a listener.
lab_netem_clear() {
  _lab_check_site "$1" || return 1
  _lab_in "r$1" iptables -F LAB_LOSS
  _lab_in "r$1" iptables -t raw -F LAB_DELAY 2>/dev/null || true # absent in a lab from before it existed
  if [[ -f $LAB_DIR/pids/bldelay$1 ]]; then lab_kill "bldelay$1" TERM || true; fi
  if [[ -f $LAB_DIR/pids/bldelayin$1 ]]; then lab_kill "bldelayin$1" TERM || true; fi
  _lab_in "r$1" tc qdisc del dev wan root 2>/dev/null || true
  _lab_in "r$1" tc qdisc del dev lan root 2>/dev/null || true
}

# lab_rtt SITE [COUNT]: the average round trip (ms, as ping prints it) from site SITE's
# host to the public host, over COUNT (default 10) pings 0.1 s apart; lost ones do not
# count. Returns 1 when no reply came.
lab_rtt() {
  _lab_check_site "$1" || return 1
  local out
  out=$(_lab_in "h$1" ping -n -q -c "${2:-10}" -i 0.1 -W 1 "$LAB_PUB_IP" 2>&1) || true
  awk -F/ '/^(rtt|round-trip)/ { print $5; found = 1 } END { exit !found }' <<<"$out"
}

# ---------------------------------------------------------------- tiny UDP/TCP tools
# perl (perl-base, always on Debian) instead of nc/socat, which are not installed.

# lab_udp_listen NAME NS PORT...: background UDP listener on 0.0.0.0:PORT...; each
# datagram becomes a line "udp LPORT from IP:PORT DATA" in $LAB_DIR/NAME.log. Returns when
# all ports are bound.
lab_udp_listen() {
  local name=$1 ns=$2 p
  shift 2
  lab_bg "$name" "$ns" perl -MIO::Socket::INET -MIO::Select -e '
    $| = 1; my $sel = IO::Select->new;
    for my $p (@ARGV) {
      $sel->add(IO::Socket::INET->new(Proto => "udp", LocalAddr => "0.0.0.0",
        LocalPort => $p, ReuseAddr => 1) or die "bind $p: $!");
    }
    while (1) { for my $s ($sel->can_read) {
      my $d = ""; $s->recv($d, 2048) // next;
      $d =~ s/[^ -~]/./g;
      printf "udp %d from %s:%d %s\n", $s->sockport, $s->peerhost, $s->peerport, $d;
    } }' "$@" || return 1
  for p in "$@"; do lab_wait_for 5 _lab_listening "$ns" udp "$p" || return 1; done
}

# lab_tcp_listen NAME NS PORT: background TCP listener; each connection becomes a line
# "tcp LPORT from IP:PORT FIRSTLINE" in $LAB_DIR/NAME.log. Returns when it listens.
lab_tcp_listen() {
  lab_bg "$1" "$2" perl -MIO::Socket::INET -e '
    $| = 1;
    my $l = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => $ARGV[0],
      Listen => 16, ReuseAddr => 1) or die "listen: $!";
    while (my $c = $l->accept) {
      my $d = <$c> // ""; chomp $d; $d =~ s/[^ -~]/./g;
      printf "tcp %d from %s:%d %s\n", $l->sockport, $c->peerhost, $c->peerport, $d;
      close $c;
    }' "$3" || return 1
  lab_wait_for 5 _lab_listening "$2" tcp "$3"
}

# lab_udp_send NS SRCPORT MSG DEST...: send MSG once to each DEST (IP:PORT) from one
# socket bound to SRCPORT (0: any), so NAT mapping behaviour can be observed.
lab_udp_send() {
  local ns=$1 sport=$2 msg=$3
  shift 3
  _lab_in "$ns" perl -MIO::Socket::INET -e '
    my ($sport, $msg, @dst) = @ARGV;
    my $s = IO::Socket::INET->new(Proto => "udp", LocalAddr => "0.0.0.0",
      LocalPort => $sport) or die "bind: $!";
    for (@dst) { my ($h, $p) = split /:/;
      $s->send($msg, 0, Socket::pack_sockaddr_in($p, Socket::inet_aton($h))) or die "send: $!"; }
  ' "$sport" "$msg" "$@"
}

# lab_tcp_send NS IP PORT MSG [TIMEOUT_S]: connect (default timeout 2 s) and send one
# line; returns nonzero if the connection could not be made.
lab_tcp_send() {
  _lab_in "$1" perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1],
      Timeout => $ARGV[3]) or exit 1;
    print $s "$ARGV[2]\n"; close $s;' "$2" "$3" "$4" "${5:-2}"
}
