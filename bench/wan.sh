# shellcheck shell=bash
# bench/wan.sh - the WAN, message size, head-of-line and idle parts of bench/run, sourced
# by it after its own lab runs (it uses bench/run's helpers: flood, measure, keep_flood,
# jget, rss_kib, bench_pub_broker, bench_site_broker, R[]). A benchmark, not a test.
#
# One lab (two sites behind cone NATs) where both systems are up at once: each site's
# mosquitto carries the bridge ("bench/#", as in bench/run) and a brokerless daemon
# ("blw/# both 2", STUN) runs beside it; the bridge's messages go on bench/..., the
# daemons' on blw/..., one flood at a time. Between scenarios only the WAN changes
# (lab_netem on both routers: half the RTT of delay each, half the loss each, so that a
# packet crossing from one site to the other is delayed by RTT/2 and lost with about the
# given probability, each way). Links and TCP connections stay up across scenarios.
#
# Env (besides bench/run's):
#   BENCH_PARTS       base wan size hol idle (default: all; "base" is bench/run's own part)
#   BENCH_WAN_RTTS    RTTs between the sites, ms (default "0 10 50 150")
#   BENCH_WAN_LOSS    loss between the sites, % each way (default "0 1"; not with 0 ms)
#   BENCH_WAN_N       QoS 1 messages of 64 bytes per flood (default 20000)
#   BENCH_SIZE_RTTS   RTTs for the 64 KiB and 1 MiB floods (default "0 50")
#   BENCH_SIZE_BYTES  bytes per large-message flood (default 64 MiB)
#   BENCH_HOL_N       1 MiB messages flooding during the head-of-line run (default 128)
#   BENCH_IDLE_S      idle measurement, seconds (default 60)

WAN_PARTS=${BENCH_PARTS:-base wan size hol idle}
WAN_RTTS=${BENCH_WAN_RTTS:-0 10 50 150}
WAN_LOSSES=${BENCH_WAN_LOSS:-0 1}
WAN_N=${BENCH_WAN_N:-20000}
WAN_PACED_N=300 # at 100 msg/s, as issue 15 measured it
WAN_RATE=100
SIZE_RTTS=${BENCH_SIZE_RTTS:-0 50}
SIZE_BYTES=${BENCH_SIZE_BYTES:-$((64 * 1024 * 1024))}
HOL_N=${BENCH_HOL_N:-128}
IDLE_S=${BENCH_IDLE_S:-60}
WAN_SCEN=() # scenario keys in the order run: "RTT/LOSS"

wan_part() { [[ " $WAN_PARTS " == *" $1 "* ]]; }

# wan_set RTT LOSS: the WAN between the sites (both routers), or none.
wan_set() {
  local half loss spec="" i
  half=$(awk -v r="$1" 'BEGIN { printf "%g", r / 2 }')
  loss=$(awk -v l="$2" 'BEGIN { printf "%g", l / 2 }')
  [[ $1 != 0 ]] && spec="delay ${half}ms"
  [[ $2 != 0 ]] && spec="$spec loss ${loss}%"
  for i in 1 2; do
    if [[ -n $spec ]]; then lab_netem "$i" "$spec" || say "lab_netem $i \"$spec\" failed ($?)"; else lab_netem_clear "$i"; fi
  done
  say "WAN: RTT $1 ms, loss $2 % ($(uptime | sed 's/.*load/load/'))"
}

# wan_both KEY SIZE COUNT: QoS 1 floods of COUNT messages of SIZE bytes through the bridge
# and through brokerless (REPS each, the median kept: R[KEY.br.*], R[KEY.bl.*]).
wan_both() {
  local key=$1 n0=$N s0=$SIZE
  N=$3 SIZE=$2
  measure "$key.br" "${key//\//-}-br" 1 2 "bench/${key//\//-}" 1
  measure "$key.bl" "${key//\//-}-bl" 1 2 "blw/${key//\//-}" 1
  N=$n0 SIZE=$s0
}

# wan_paced KEY: WAN_PACED_N QoS 1 messages of 64 bytes at WAN_RATE msg/s, each way.
wan_paced() {
  local key=$1 s0=$SIZE t=${1//\//-}
  SIZE=64
  flood "$t-pbr" 1 2 "bench/$t-p" 1 "$WAN_RATE" "$WAN_PACED_N" && keep_flood "$key.pbr" "$t-pbr"
  flood "$t-pbl" 1 2 "blw/$t-p" 1 "$WAN_RATE" "$WAN_PACED_N" && keep_flood "$key.pbl" "$t-pbl"
  SIZE=$s0
}

# wan_hol SYS TOPIC: the paced run while SYS floods 1 MiB messages on the same path.
wan_hol() {
  local sys=$1 top=$2 s0=$SIZE
  sub_start "hol-$sys-f.sub" 2 "$top/hol-f" "$HOL_N" 1 20 || return 0
  lab_bg "hol-$sys-f.pub" h1 "$BLLOAD" pub -h 127.0.0.1 -t "$top/hol-f" -n "$HOL_N" -q 1 -s 1048576
  SIZE=64
  flood "hol-$sys" 1 2 "$top/hol-p" 1 "$WAN_RATE" "$WAN_PACED_N" && keep_flood "hol.$sys" "hol-$sys"
  SIZE=$s0
  sub_wait "hol-$sys-f.sub" 300
  R["hol.$sys.fdur"]=$(jget "$LAB_DIR/hol-$sys-f.sub.log" duration_s)
  R["hol.$sys.frate"]=$(jget "$LAB_DIR/hol-$sys-f.sub.log" rate)
  R["hol.$sys.funique"]=$(jget "$LAB_DIR/hol-$sys-f.sub.log" unique)
}

# idle_sample NAME...: "NAME voluntary+involuntary context switches of all its threads,
# CPU ticks" for each lab process NAME.
idle_sample() {
  local name pid
  for name in "$@"; do
    pid=$(lab_pid "$name") || continue
    echo "$name $(cat /proc/"$pid"/task/*/status 2>/dev/null |
      awk '/^(non)?voluntary_ctxt_switches/ { s += $2 } END { print s + 0 }') $(awk '{ print $14 + $15 }' "/proc/$pid/stat")"
  done
}

wan_idle() {
  local a b procs=(bl1 bl2 site1-broker site2-broker pub-broker)
  a=$(idle_sample "${procs[@]}")
  sleep "$IDLE_S"
  b=$(idle_sample "${procs[@]}")
  while read -r name w c; do
    read -r _ w1 c1 < <(grep "^$name " <<<"$b")
    R["idle.$name.wake"]=$(awk -v a="$w" -v b="$w1" -v s="$IDLE_S" 'BEGIN { printf "%.1f", (b - a) / s }')
    R["idle.$name.cpu"]=$(awk -v a="$c" -v b="$c1" -v s="$IDLE_S" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz / s * 100 }')
  done <<<"$a"
}

wan_run() {
  say "D. WAN, sizes, head of line, idle: bridges and brokerless side by side"
  lab_up 2 cone
  bench_pub_broker
  lab_start_coturn
  # shellcheck disable=SC2317 # called by bl_sites
  lab_start_site_broker() { bench_site_broker "$1" bridge; }
  bl_sites 2 # bridged site brokers this time, and the identities
  for i in 1 2; do bl_config "$i" "blw/# both 2" stun; done
  bl_start 1
  bl_start 2
  if ! bl_wait_open 1 bravo 30 || ! bl_wait_open 2 alpha 30; then
    say "brokerless link did not open: no WAN figures (logs: $LAB_DIR/bl1.log)"
    return 0
  fi
  sleep 2
  R["wan.load0"]=$(uptime | sed 's/.*load average: //')
  local rtt loss
  if wan_part wan; then
    for rtt in $WAN_RTTS; do
      for loss in $WAN_LOSSES; do
        [[ $rtt == 0 && $loss != 0 ]] && continue
        wan_set "$rtt" "$loss"
        WAN_SCEN+=("$rtt/$loss")
        # Paced first: it lets each link's round-trip estimate settle to the new path
        # before the floods (a real path does not jump from 0 to 150 ms at once).
        wan_paced "wan$rtt/$loss"
        wan_both "wan$rtt/$loss" 64 "$WAN_N"
      done
    done
  fi
  if wan_part size; then
    local sz
    for rtt in $SIZE_RTTS; do
      wan_set "$rtt" 0
      for sz in 65536 1048576; do wan_both "size$rtt/$sz" "$sz" $((SIZE_BYTES / sz)); done
    done
  fi
  wan_set 0 0
  if wan_part hol; then
    wan_paced hol0
    wan_hol br bench
    wan_hol bl blw
  fi
  if wan_part idle; then
    say "idle for $IDLE_S s"
    sleep 5
    wan_idle
  fi
  R["wan.load1"]=$(uptime | sed 's/.*load average: //')
  lab_down 0
}

# ---------------------------------------------------------------- tables

_r() { echo "${R[$1]:-NA}"; }
_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b ~ /^[0-9.]+$/) printf "%.2f", b / a; else print "NA" }'; }
_lost() { [[ $1 =~ ^[0-9]+$ ]] && echo "$(($2 - $1))" || echo NA; }

wan_tables() {
  local sc key rtt ref
  echo
  echo "WAN scenarios: QoS 1 floods of $WAN_N × 64 B (median of $REPS) and $WAN_PACED_N paced at $WAN_RATE msg/s;"
  echo "both systems in one lab, load average at start / end: $(_r wan.load0) / $(_r wan.load1)"
  ref=$(_r "wan0/0.bl.rate")
  for sc in "${WAN_SCEN[@]}"; do
    key=wan$sc
    rtt=${sc%/*}
    echo
    echo "RTT ${rtt} ms, loss ${sc#*/} %:"
    echo
    echo "| | mosquitto bridges | brokerless | ratio |"
    echo "| --- | --- | --- | --- |"
    printf '| QoS 1 flood, msg/s | %s | %s | %s |\n' "$(_r "$key.br.rate")" "$(_r "$key.bl.rate")" \
      "$(_ratio "$(_r "$key.br.rate")" "$(_r "$key.bl.rate")")"
    printf '| msg/s of each run | %s | %s | |\n' "$(_r "$key.br.rates")" "$(_r "$key.bl.rates")"
    printf '| brokerless against its own 0 ms rate | | | %s |\n' "$(_ratio "$ref" "$(_r "$key.bl.rate")")"
    printf '| lost / duplicates / out of order | %s / %s / %s | %s / %s / %s | |\n' \
      "$(_lost "$(_r "$key.br.unique")" "$WAN_N")" "$(_r "$key.br.dups")" "$(_r "$key.br.ooo")" \
      "$(_lost "$(_r "$key.bl.unique")" "$WAN_N")" "$(_r "$key.bl.dups")" "$(_r "$key.bl.ooo")"
    printf '| CPU µs per message, brokers + daemons | %s | %s | |\n' "$(_r "$key.br.cpu_us")" "$(_r "$key.bl.cpu_us")"
    printf '| paced p50 / p99 ms (one-way delay %s ms) | %s / %s | %s / %s | |\n' \
      "$(awk -v r="$rtt" 'BEGIN { printf "%g", r / 2 }')" \
      "$(_r "$key.pbr.p50")" "$(_r "$key.pbr.p99")" "$(_r "$key.pbl.p50")" "$(_r "$key.pbl.p99")"
    printf '| paced delivered of %s | %s | %s | |\n' "$WAN_PACED_N" "$(_r "$key.pbr.unique")" "$(_r "$key.pbl.unique")"
  done
  if wan_part size; then
    local sz n
    echo
    echo "Large messages, QoS 1, $((SIZE_BYTES >> 20)) MiB per flood (median of $REPS):"
    echo
    echo "| RTT, size | bridges MB/s | brokerless MB/s | ratio | brokerless runs, msg/s | lost/dup/ooo (bridges; brokerless) |"
    echo "| --- | --- | --- | --- | --- | --- |"
    for rtt in $SIZE_RTTS; do
      for sz in 65536 1048576; do
        key=size$rtt/$sz
        n=$((SIZE_BYTES / sz))
        local mbr mbl
        mbr=$(awk -v r="$(_r "$key.br.rate")" -v s="$sz" 'BEGIN { if (r ~ /^[0-9.]+$/) printf "%.1f", r * s / 1e6; else print "NA" }')
        mbl=$(awk -v r="$(_r "$key.bl.rate")" -v s="$sz" 'BEGIN { if (r ~ /^[0-9.]+$/) printf "%.1f", r * s / 1e6; else print "NA" }')
        printf '| %s ms, %s KiB | %s | %s | %s | %s | %s/%s/%s; %s/%s/%s |\n' "$rtt" $((sz / 1024)) "$mbr" "$mbl" \
          "$(_ratio "$mbr" "$mbl")" "$(_r "$key.bl.rates")" \
          "$(_lost "$(_r "$key.br.unique")" "$n")" "$(_r "$key.br.dups")" "$(_r "$key.br.ooo")" \
          "$(_lost "$(_r "$key.bl.unique")" "$n")" "$(_r "$key.bl.dups")" "$(_r "$key.bl.ooo")"
      done
    done
  fi
  if wan_part hol; then
    echo
    echo "Head of line: $WAN_PACED_N QoS 1 messages of 64 B at $WAN_RATE msg/s, alone and while $HOL_N × 1 MiB flood the same path (0 ms):"
    echo
    echo "| | bridges | brokerless |"
    echo "| --- | --- | --- |"
    printf '| alone: p50 / p99 ms | %s / %s | %s / %s |\n' "$(_r hol0.pbr.p50)" "$(_r hol0.pbr.p99)" "$(_r hol0.pbl.p50)" "$(_r hol0.pbl.p99)"
    printf '| during the flood: p50 / p99 / max ms | %s / %s / %s | %s / %s / %s |\n' \
      "$(_r hol.br.p50)" "$(_r hol.br.p99)" "$(_r hol.br.pmax)" "$(_r hol.bl.p50)" "$(_r hol.bl.p99)" "$(_r hol.bl.pmax)"
    printf '| paced delivered of %s; flood delivered of %s | %s; %s | %s; %s |\n' "$WAN_PACED_N" "$HOL_N" \
      "$(_r hol.br.unique)" "$(_r hol.br.funique)" "$(_r hol.bl.unique)" "$(_r hol.bl.funique)"
    printf '| the flood took, s (1 MiB msg/s) | %s (%s) | %s (%s) |\n' "$(_r hol.br.fdur)" "$(_r hol.br.frate)" "$(_r hol.bl.fdur)" "$(_r hol.bl.frate)"
  fi
  if wan_part idle; then
    echo
    echo "Idle, links open, over $IDLE_S s: wake-ups/s (context switches, all threads) and CPU %:"
    echo
    echo "| process | wake-ups/s | CPU % |"
    echo "| --- | --- | --- |"
    local p
    for p in bl1 bl2 site1-broker site2-broker pub-broker; do
      printf '| %s | %s | %s |\n' "$p" "$(_r "idle.$p.wake")" "$(_r "idle.$p.cpu")"
    done
    echo "(site brokers carry their bridge; bl1/bl2 are the brokerless daemons beside them)"
  fi
}
