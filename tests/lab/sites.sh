# shellcheck shell=bash
# sites.sh - brokerless sites on top of lab.sh: identities, configs, daemons.
#
#   . "$(dirname "$0")/sites.sh"    # loads lab.sh too (unless the test already did)
#   lab_up 2 cone; lab_start_pub_broker; lab_start_coturn
#   bl_sites 2                      # names alpha, bravo; brokers + identities
#   bl_config 1 "test/# both 2"     # site 1's config: every other site as a peer
#   bl_start 1; bl_start 2
#   bl_wait_open 1 bravo 30
#
# Site i is named ${BL_NAMES[i]}; its state dir, config and log live in $LAB_DIR.

# Load lab.sh, which everything here stands on, unless the caller already did.
declare -F lab_up >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lab.sh"

BL_BIN=${BL_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/brokerless}
BL_NAMES=(none alpha bravo charlie delta)
BL_SECRET=${BL_SECRET:-lab-network-secret-not-for-production}
declare -A BL_FP=()
# brokerless keeps a persistent session with its local broker: let the broker hold
# everything for it while it restarts (mosquitto's default keeps only 1000).
LAB_BROKER_EXTRA=${LAB_BROKER_EXTRA:-max_queued_messages 0}

# bl_sites N: start a local broker at every site and create each site's identity.
bl_sites() {
  local i
  for ((i = 1; i <= $1; i++)); do
    lab_start_site_broker "$i"
    BL_FP[$i]=$("$BL_BIN" init --name "${BL_NAMES[$i]}" -d "$LAB_DIR/state$i" |
      sed -n 's/^fingerprint = //p')
    [[ -n ${BL_FP[$i]} ]] || { echo "bl_sites: no fingerprint for site $i" >&2; return 1; }
  done
}

# bl_config_head SITE [nosignal]: print the start of site SITE's config: its [site]
# section (with delivery = $BL_DELIVERY if that is set), [local] (its broker) and, unless
# nosignal, [signal] (the lab's public broker); the [ice] section and the peers are the
# caller's (bl_config, esp_config).
bl_config_head() {
  local i=$1
  echo "[site]"
  echo "name = ${BL_NAMES[$i]}"
  echo "state_dir = $LAB_DIR/state$i"
  echo "log_level = ${BL_LOG_LEVEL:-info}"
  [[ -z ${BL_DELIVERY:-} ]] || echo "delivery = $BL_DELIVERY"
  echo
  echo "[local]"
  echo "host = 127.0.0.1"
  echo "port = 1883"
  if [[ ${2:-} != nosignal ]]; then
    echo
    echo "[signal]"
    echo "url = mqtt://$LAB_PUB_IP:1883"
    echo "secret = $BL_SECRET"
  fi
}

# bl_config_ice ICE_MODE: print the [ice] section of a site's config for ICE_MODE: stun
# (the lab's STUN server), turn (its TURN server), both, or relay (TURN with force_relay).
bl_config_ice() {
  echo "[ice]"
  case $1 in
    stun) echo "stun = $LAB_PUB_IP:3478" ;;
    turn | both | relay)
      if [[ $1 == both ]]; then echo "stun = $LAB_PUB_IP:3478"; fi
      echo "turn = $LAB_PUB_IP:3478"
      echo "turn_username = $LAB_TURN_USER"
      echo "turn_password = $LAB_TURN_PASS"
      if [[ $1 == relay ]]; then echo "force_relay = true"; fi
      ;;
  esac
}

# bl_config SITE RULE [ICE_MODE] [EXTRA_PEER_LINES]: write site SITE's config with every
# other site of the lab as a peer using RULE. ICE_MODE (bl_config_ice): stun (default),
# turn, both, relay.
bl_config() {
  local i=$1 rule=$2 mode=${3:-stun} peer_lines=${4:-} j f=$LAB_DIR/site$1.conf
  {
    bl_config_head "$i"
    echo
    bl_config_ice "$mode"
    for ((j = 1; j <= LAB_N; j++)); do
      ((j == i)) && continue
      echo
      echo "[peer ${BL_NAMES[$j]}]"
      echo "fingerprint = ${BL_FP[$j]}"
      echo "topic = $rule"
      if [[ -n $peer_lines ]]; then echo "$peer_lines"; fi
    done
  } >"$f"
}

# bl_persistent_broker SITE: restart site SITE's broker as one that keeps its sessions
# and queues across its own restarts (a store in the lab dir, no queue limit), as a real
# broker that must not lose sessions would be. It runs as root so that it can write the
# store (mosquitto drops to user "mosquitto" otherwise, which cannot).
bl_persistent_broker() {
  mkdir -p "$LAB_DIR/broker$1-store"
  # shellcheck disable=SC2034 # read by lab_start_site_broker
  LAB_BROKER_EXTRA="max_queued_messages 0
persistence true
persistence_location $LAB_DIR/broker$1-store/
user root"
  lab_restart_site_broker "$1"
}

# bl_tool NAME: the lab tool NAME (blpeer, blforge: tests/lab/NAME.c) of the build under
# test: in $BL_BUILD (set by CTest), else next to $BL_BIN's brokerless.
# Fails, saying so, when it is not there (not built).
bl_tool() {
  local t
  if [[ -n ${BL_BUILD:-} ]]; then t=$BL_BUILD/tests/$1; else t=$(dirname "$BL_BIN")/tests/$1; fi
  [[ -x $t ]] || { echo "no $1 at $t (build the tests)" >&2; return 1; }
  echo "$t"
}

# bl_start SITE: run site SITE's daemon in its host namespace (log: $LAB_DIR/bl<SITE>.log).
bl_start() { lab_bg "bl$1" "h$1" "$BL_BIN" run -c "$LAB_DIR/site$1.conf"; }
bl_stop() { lab_kill "bl$1" "${2:-TERM}"; }
bl_log() { echo "$LAB_DIR/bl$1.log"; }

# bl_count SITE PATTERN: how many lines of site SITE's log match PATTERN (grep -E).
bl_count() { grep -cE "$2" "$(bl_log "$1")" 2>/dev/null || true; }

# bl_wait_open SITE PEER TIMEOUT [N]: wait until site SITE's log shows its N-th (default
# 1st) "link open" to PEER.
bl_wait_open() {
  local n=${4:-1}
  lab_wait_for "$3" bash -c "[[ \$(grep -c 'peer $2: link open via' '$(bl_log "$1")' 2>/dev/null) -ge $n ]]"
}

# bl_path SITE PEER: the path type of the last "link open" to PEER (host/srflx/prflx/relay).
bl_path() { grep "peer $2: link open via" "$(bl_log "$1")" | tail -1 | sed -E 's/.*link open via ([a-z]+) path.*/\1/'; }

# bl_sub SITE NAME TOPIC [ARGS...]: a background subscriber at site SITE whose output
# (one line per message: "topic payload") is $(bl_sub_out NAME). Returns once it is
# subscribed: it also listens on probe/NAME, which is published until it shows up.
# MQTT 5 unless BL_SUB_PROTO says otherwise (mosquitto_sub 2.0.11 over MQTT 5 stops
# with a protocol error on a flood of QoS 2 messages: t28 uses "-V 311").
bl_sub() {
  local i=$1 name=$2 topic=$3 k
  shift 3
  # shellcheck disable=SC2086 # BL_SUB_PROTO is a list of options
  lab_bg "$name" "h$i" mosquitto_sub -h 127.0.0.1 ${BL_SUB_PROTO:--V 5 --retain-as-published} -q 2 -t "$topic" -t "probe/$name" -v "$@"
  for ((k = 0; k < 50; k++)); do
    lab_exec "$i" mosquitto_pub -h 127.0.0.1 -t "probe/$name" -m "__probe_${name}__" 2>/dev/null || true
    grep -q "__probe_${name}__" "$LAB_DIR/$name.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bl_sub: subscriber $name did not come up" >&2
  return 1
}
bl_sub_out() { echo "$LAB_DIR/$1.log"; }
# bl_got NAME: the messages subscriber NAME received, probes left out.
bl_got() { grep -v "__probe_" "$LAB_DIR/$1.log" 2>/dev/null || true; }

# bl_pub SITE ARGS...: mosquitto_pub at site SITE's broker.
bl_pub() { local i=$1; shift; lab_exec "$i" mosquitto_pub -h 127.0.0.1 -V 5 "$@"; }

# bl_wait_got NAME N TIMEOUT: wait until subscriber NAME has at least N messages.
bl_wait_got() { lab_wait_for "$3" bash -c "[[ \$(grep -vc '__probe_' '$LAB_DIR/$1.log' 2>/dev/null) -ge $2 ]]"; }

# bl_pub_seq SITE TOPIC FIRST LAST [QOS]: publish the numbers FIRST..LAST, one message
# each, at site SITE (QoS 1 by default), as fast as the broker takes them.
bl_pub_seq() {
  # mosquitto_pub -l loses messages past 65535 lines (docs/LAB.md, machine notes).
  (($4 - $3 < 65535)) || { fail "bl_pub_seq: $3..$4 is more than one mosquitto_pub -l can send"; return 1; }
  seq "$3" "$4" | lab_exec_stdin "$1" mosquitto_pub -h 127.0.0.1 -V 5 -q "${5:-1}" -t "$2" -l
}

# bl_seq_report NAME FIRST LAST: compare what subscriber NAME got (its payloads, one per
# line, printed with -F %p) with FIRST..LAST. Prints "received R unique U duplicates D
# missing M out_of_order O".
bl_seq_report() {
  bl_got "$1" | awk -v first="$2" -v last="$3" '
    { n++; if (seen[$1]++) dup++; else uniq++; if ($1 + 0 < prev) ooo++; prev = $1 + 0 }
    END {
      for (i = first; i <= last; i++) if (!(i in seen)) miss++
      printf "received %d unique %d duplicates %d missing %d out_of_order %d\n",
        n, uniq, dup, miss, ooo
    }'
}

# bl_crash_restart SITE SUB [PAUSE_S]: kill -9 site SITE's daemon, say how many
# messages subscriber SUB had by then, and start it again PAUSE_S (2) seconds later;
# the first run's log is kept as bl<SITE>-first.log.
bl_crash_restart() {
  local i=$1
  bl_stop "$i" KILL
  pass "${BL_NAMES[$i]}'s daemon killed after $(bl_got "$2" | wc -l) messages arrived"
  sleep "${3:-2}"
  mv "$(bl_log "$i")" "$LAB_DIR/bl$i-first.log"
  bl_start "$i"
}

# bl_assert_none_lost NAME N MSG [TIMEOUT]: wait (up to TIMEOUT, 120 s) until subscriber
# NAME has the payloads 1..N, then check that none is missing (MSG says what that means);
# duplicates are printed, not failed (QoS 1 is at least once), and left in BL_DUPS for a
# test that bounds them.
bl_assert_none_lost() {
  local r
  bl_wait_seq "$1" "$2" "${4:-120}" || true
  sleep 2
  r=$(bl_seq_report "$1" 1 "$2")
  echo "$1: $r"
  assert_eq "$(sed -E 's/.* missing ([0-9]+).*/\1/' <<<"$r")" 0 "$3"
  BL_DUPS=$(sed -E 's/.* duplicates ([0-9]+).*/\1/' <<<"$r")
  if ((BL_DUPS > 0)); then
    echo "note: $BL_DUPS duplicates (printed, not failed; the test says why): $(bl_got "$1" | awk '{ print $1 }' | sort -n | uniq -d | awk 'NR <= 20' | tr '\n' ' ')"
  fi
}

# bl_wait_seq NAME COUNT TIMEOUT: wait until subscriber NAME has COUNT distinct payloads.
bl_wait_seq() {
  lab_wait_for "$3" bash -c "[[ \$(grep -v '__probe_' '$LAB_DIR/$1.log' | sort -u | wc -l) -ge $2 ]]"
}

# bl_expect_seq NAME N TIMEOUT SETTLE_S MSG [any-order]: wait (up to TIMEOUT) until
# subscriber NAME has N distinct payloads, wait SETTLE_S seconds more (a duplicate or a
# straggler would show up then), and check that it got 1..N, each exactly once, in order
# (with any-order: in any order).
bl_expect_seq() {
  local r want="received $2 unique $2 duplicates 0 missing 0"
  bl_wait_seq "$1" "$2" "$3" || true
  sleep "$4"
  r=$(bl_seq_report "$1" 1 "$2")
  if [[ ${6:-} == any-order ]]; then r=${r% out_of_order*}; else want+=" out_of_order 0"; fi
  assert_eq "$r" "$want" "$5"
}

# bl_pub_seq_paced SITE TOPIC FIRST LAST SECONDS [QOS]: like bl_pub_seq, spread evenly
# over about SECONDS (in steps of 10 messages) on one connection, so that a fault can be
# injected while the stream is still flowing. Run it in the background (&).
bl_pub_seq_paced() {
  perl -e '$| = 1; my ($a, $b, $secs) = @ARGV; my $steps = int(($b - $a + 1) / 10) || 1;
    my $pause = $secs / $steps;
    for (my $i = $a; $i <= $b; $i++) {
      print "$i\n";
      select(undef, undef, undef, $pause) if ($i - $a + 1) % 10 == 0;
    }' "$3" "$4" "$5" |
    lab_exec_stdin "$1" mosquitto_pub -h 127.0.0.1 -V 5 -q "${6:-1}" -t "$2" -l
}

# bl_flood SUB TOPIC N QOS SPREAD_S PART FAULT...: publish 1..N on TOPIC at alpha's
# broker with QOS, as fast as it takes them (SPREAD_S 0) or spread over about SPREAD_S
# seconds (bl_pub_seq_paced); once bravo's subscriber SUB has N/PART of them (or after
# 60 s), run FAULT... (a command and its arguments); then wait for the publisher to have
# handed all N to alpha's broker.
bl_flood() {
  local sub=$1 topic=$2 n=$3 qos=$4 spread=$5 part=$6 pubpid
  shift 6
  if ((spread > 0)); then
    bl_pub_seq_paced 1 "$topic" 1 "$n" "$spread" "$qos" &
  else
    bl_pub_seq 1 "$topic" 1 "$n" "$qos" &
  fi
  pubpid=$!
  bl_wait_got "$sub" $((n / part)) 60 || true
  "$@"
  wait "$pubpid" && pass "alpha's broker took all $n at QoS $qos" || fail "publisher failed"
}

# bl_flood_kill_receiver SUB TOPIC N QOS: bl_flood (as fast as alpha's broker takes them)
# with a kill -9 of bravo's daemon and its restart (bl_crash_restart) once SUB has a
# third; then bravo's link must come back.
bl_flood_kill_receiver() {
  bl_flood "$1" "$2" "$3" "$4" 0 3 bl_crash_restart 2 "$1"
  bl_wait_open 2 alpha 60 && pass "bravo restarted and the link is back" || fail "link did not come back"
}

# bl_flood_wan_cut SUB TOPIC N QOS SPREAD_S PART CUT_S: bl_flood with a cut of bravo's WAN
# for CUT_S seconds (bl_wan_cut_for) once SUB has N/PART.
bl_flood_wan_cut() { bl_flood "$1" "$2" "$3" "$4" "$5" "$6" bl_wan_cut_for 2 "$7" "$1"; }

# bl_wan_cut_for SITE SECONDS SUB: cut site SITE's WAN for SECONDS. How many messages
# subscriber SUB had before and got during the cut is printed, not checked.
bl_wan_cut_for() {
  local before during
  lab_wan_cut "$1"
  before=$(bl_got "$3" | wc -l)
  pass "${BL_NAMES[$1]}'s WAN cut after $before messages arrived"
  sleep "$2"
  during=$(bl_got "$3" | wc -l)
  lab_wan_restore "$1"
  echo "note: $((during - before)) messages arrived during the $2 s cut"
}

# bl_broker_restart SITE SUB: restart site SITE's broker, saying how many messages
# subscriber SUB had by then.
bl_broker_restart() {
  lab_restart_site_broker "$1" && pass "${BL_NAMES[$1]}'s broker restarted after $(bl_got "$2" | wc -l) messages" ||
    fail "${BL_NAMES[$1]}'s broker did not restart"
}

# bl_stream_under_impairment TOPIC N TIMEOUT: bravo's subscriber subB on TOPIC, N QoS 1
# messages from alpha (bl_pub_seq), how long they took printed (never checked), and the
# check that subB got all N once each, in order, under $BL_IMPAIRED (bl_impair).
bl_stream_under_impairment() {
  local t0
  bl_sub 2 subB "$1" -F '%p'
  t0=$(_lab_now_us)
  bl_pub_seq 1 "$1" 1 "$2" 1
  bl_wait_seq subB "$2" "$3" || true
  echo "delivered in $(lab_elapsed "$t0") s under $BL_IMPAIRED"
  bl_expect_seq subB "$2" 0 1 "all $2 arrive once, in order, under $BL_IMPAIRED"
}

# bl_impair WHAT MIN_MS FALLBACK FALLBACK_WHAT SITE=SPEC...: impair each SITE's WAN with
# SPEC (lab_netem), which delays it by MIN_MS + 1 ms or more, and check the setup, not
# brokerless: a ping from each SITE's host to the public host takes MIN_MS longer than
# one from the last SITE's host did before. Where neither netem nor bldelay works
# (lab_netem returns 2), the last SITE gets FALLBACK (a loss alone) instead, which is
# said. BL_IMPAIRED says what is in place: WHAT, or FALLBACK_WHAT.
# shellcheck disable=SC2034 # BL_IMPAIRED is read by the tests
bl_impair() {
  local what=$1 min=$2 fallback=$3 fallback_what=$4 rc=0 last s i rtt0 rtt
  shift 4
  last=${!#}
  last=${last%%=*}
  rtt0=$(lab_rtt "$last") || rtt0=""
  for s in "$@"; do
    if ((rc == 0)); then lab_netem "${s%%=*}" "${s#*=}" || rc=$?; fi
  done
  BL_IMPAIRED=$what
  if ((rc == 2)); then
    echo "note: no netem and no bldelay here; testing $fallback_what without the delay"
    for s in "$@"; do lab_netem_clear "${s%%=*}"; done
    lab_netem "$last" "$fallback"
    BL_IMPAIRED=$fallback_what
  elif ((rc != 0)); then
    fail "lab_netem returned $rc"
  else
    for s in "$@"; do
      i=${s%%=*}
      rtt=$(lab_rtt "$i" 20) || rtt=""
      echo "RTT ${BL_NAMES[$i]} host -> public host: ${rtt0:-?} ms without, ${rtt:-?} ms with the impairment"
      if [[ -n $rtt0 && -n $rtt ]] && awk -v a="$rtt0" -v b="$rtt" -v m="$min" 'BEGIN { exit !(b - a >= m) }'; then
        pass "the WAN delay is in place at ${BL_NAMES[$i]} (RTT ${rtt0} -> ${rtt} ms)"
      else
        fail "the WAN delay is not in place at ${BL_NAMES[$i]} (RTT '${rtt0}' -> '${rtt}' ms)"
      fi
    done
  fi
}

# bl_impair_clear SITE...: lift each SITE's impairment (lab_netem_clear) and print what
# its bldelay, if one ran, counted.
bl_impair_clear() {
  local i
  for i in "$@"; do lab_netem_clear "$i"; done
  for i in "$@"; do
    if [[ -f $LAB_DIR/bldelay$i.log ]]; then sed -n 's/^/  /; /queue '"$i"':\|kernel queue/p' "$LAB_DIR/bldelay$i.log"; fi
    if [[ -f $LAB_DIR/bldelayin$i.log ]]; then sed -n 's/^/  in: /; /queue '"$((100 + i))"':\|kernel queue/p' "$LAB_DIR/bldelayin$i.log"; fi
  done
}

# bl_assert_peak_mem SITE MAX_MIB WHAT: print the peak memory (VmHWM) of site SITE's
# daemon and check that it is below MAX_MIB (WHAT says why that bound), except in an
# AddressSanitizer build, whose quarantine keeps freed memory (256 MB by default: RSS
# follows what was ever allocated, not what is held), which is said instead.
bl_assert_peak_mem() {
  local hwm libs name=${BL_NAMES[$1]}
  hwm=$(awk '/^VmHWM/ { print int($2 / 1024) }' "/proc/$(lab_pid "bl$1")/status")
  echo "$name's daemon peak memory: ${hwm} MiB"
  libs=$(ldd "$BL_BIN" 2>/dev/null || true)
  if grep -q libasan <<<"$libs"; then
    echo "note: AddressSanitizer build: peak memory not checked"
  else
    assert_ok "$name's peak memory (${hwm} MiB) $3" test "$hwm" -lt "$2"
  fi
}

# bl_retained SITE TOPIC: print the retained message of TOPIC at site SITE's broker
# ("" when there is none): what a new subscriber gets at once.
bl_retained() {
  lab_exec "$1" timeout -s KILL 4 mosquitto_sub -h 127.0.0.1 -V 5 -t "$2" --retained-only -C 1 -W 2 2>/dev/null || true
}

# bl_lab_sites N NAT: a lab of N sites behind NAT (lab_up N NAT), the public broker and
# coturn, and every site's broker and identity (bl_sites N); the configs are the caller's.
bl_lab_sites() {
  lab_up "$1" "$2"
  lab_start_pub_broker
  lab_start_coturn
  bl_sites "$1"
}

# bl_lab N NAT RULE [ICE_MODE]: the usual start of a test: bl_lab_sites N NAT, and every
# site's config, each site peering with all others under RULE.
bl_lab() {
  local n=$1 rule=$3 mode=${4:-both} i
  bl_lab_sites "$n" "$2"
  for ((i = 1; i <= n; i++)); do bl_config "$i" "$rule" "$mode"; done
}

# bl_up N: start the daemons of sites 1..N and check that site 1's link to site 2 opens.
bl_up() {
  local i
  for ((i = 1; i <= $1; i++)); do bl_start "$i"; done
  if bl_wait_open 1 "${BL_NAMES[2]}" 30; then pass "link open"; else fail "link did not open"; fi
}

# bl_lab_up N: the lab most tests start with: bl_lab N cone "test/# both 2" both (N sites
# behind cone NATs, each peering with all others for test/# at up to QoS 2, by STUN or
# TURN), then bl_up N (the daemons started, site 1's link to site 2 open).
bl_lab_up() {
  bl_lab "$1" cone "test/# both 2" both
  bl_up "$1"
}

# bl_open_pair TIMEOUT [HOW]: start the daemons of sites 1 and 2 and check that the link
# between them opens on both sides within TIMEOUT seconds (HOW, e.g. "through symmetric
# NATs", is said); how long it took is printed in the pass, never checked.
bl_open_pair() {
  local t0
  t0=$(_lab_now_us)
  bl_start 1
  bl_start 2
  if bl_wait_open 1 "${BL_NAMES[2]}" "$1" && bl_wait_open 2 "${BL_NAMES[1]}" "$1"; then
    pass "link open on both sides${2:+ $2} after $(lab_elapsed "$t0") s"
  else
    fail "link did not open within $1 s"
  fi
}

# bl_assert_direct SITE PEER: site SITE's last link to PEER opened on a direct path (host,
# srflx or prflx), not through the relay.
bl_assert_direct() {
  local path
  path=$(bl_path "$1" "$2")
  if [[ $path == host || $path == srflx || $path == prflx ]]; then
    pass "direct path ($path), not relayed"
  else
    fail "expected a direct path, got '$path'"
  fi
}

# Every test ends with lab_finish. Before counting, stop the daemons cleanly (so an ASan
# build writes its leak report) and fail the test on any sanitizer report in their logs.
eval "$(declare -f lab_finish | sed '1s/lab_finish/_bl_lab_finish/')"
lab_finish() {
  local i f
  for ((i = 1; i <= LAB_N; i++)); do
    if lab_running "bl$i" 2>/dev/null; then bl_stop "$i" TERM || true; fi
  done
  for f in "$LAB_DIR"/bl*.log; do
    [[ -f $f ]] || continue
    if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$f"; then
      fail "sanitizer report in $(basename "$f")"
      grep -E -A20 "ERROR: (Address|Leak)Sanitizer|runtime error:" "$f" | awk 'NR <= 40'
    fi
  done
  _bl_lab_finish "$@"
}
