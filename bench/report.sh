#!/usr/bin/env bash
# Renders docs/benchmarks.md from a results directory of bench/run.sh.
#
# Usage: bench/report.sh RESULTS_DIR [OLD_PAGE] > docs/benchmarks.md
#
# Everything below the notes marker of OLD_PAGE is copied unchanged, so
# hand-written notes about a run survive a rerun.
set -euo pipefail

results=$1
old_page=${2:-}
marker='<!-- notes: everything below this line is kept by bench/report.sh -->'

# shellcheck disable=SC1091
source "$results/meta.env"

# Prints FILTER applied to RESULTS/NAME.json, or "n/a" when the file is
# missing or the value is null.
field() {
  local file=$results/$1.json
  if [ -f "$file" ]; then
    jq -r "($2) // \"n/a\"" "$file"
  else
    echo n/a
  fi
}

have() {
  [ -f "$results/$1.json" ] && jq -e '.status != "no_report"' "$results/$1.json" >/dev/null
}

# Prints A / B with two decimals, or n/a.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}

verdict() {
  if [ "$1" = "n/a" ]; then echo "not measured"; elif [ "$1" = 1 ]; then echo "met"; else echo "**not met**"; fi
}

command_block() {
  if [ -f "$results/$1.cmd" ]; then
    printf '```\n%s\n```\n' "$(cat "$results/$1.cmd")"
  fi
}

# One table row per metric of a single-step run, one column per label.
run_table() {
  local labels=("$@") label
  printf '| |'
  for label in "${labels[@]}"; do printf ' %s |' "$label"; done
  printf '\n| --- |'
  for label in "${labels[@]}"; do printf ' ---: |'; done
  printf '\n'
  local rows=(
    "status|.status"
    "publish path|.publish"
    "connections (stable, churning)|\"\\(.stable_subscribers) + \\(.churn_pool)\""
    "setup: connect and subscribe, s|.setup.seconds"
    "events published (acked)|\"\\(.steps[0].published) (\\(.steps[0].acked))\""
    "achieved event rate, /s|.steps[0].achieved_rate"
    "expected deliveries (stable connections)|.steps[0].expected"
    "delivered|.steps[0].delivered"
    "not delivered by the end of the drain|.steps[0].lost"
    "duplicates|.steps[0].duplicates"
    "reordered|.steps[0].reordered"
    "closed by the server|.steps[0].closed_by_server"
    "deliveries/s (all connections)|.steps[0].deliveries_per_s"
    "latency p50, ms|.steps[0].latency_ms.p50"
    "latency p90, ms|.steps[0].latency_ms.p90"
    "latency p99, ms|.steps[0].latency_ms.p99"
    "latency p99.9, ms|.steps[0].latency_ms.p999"
    "latency max, ms|.steps[0].latency_ms.max"
    "server CPU, s (window)|.steps[0].server_cpu_s"
    "server CPU, % of one core|.steps[0].server_cpu_percent"
    "server CPU-s per million deliveries|.steps[0].server_cpu_s_per_million_deliveries"
    "server RSS at end, MB|(.server.rss_kb_end / 1024 | . * 10 | round / 10)"
    "load generator CPU, s|.steps[0].loadgen_cpu_s"
    "machine CPU busy, % of all cores|.steps[0].machine_busy_percent"
    "CPU of other processes and kernel threads, s (estimate)|.steps[0].other_processes_cpu_s"
    "interrupt and softirq time from /proc/stat, s|.steps[0].interrupt_cpu_s"
    "other processes' CPU, s|([.server.aux_pids[].label] | join(\", \")) as \$l | \"\\(.steps[0].aux_cpu_s | map(tostring) | join(\", \")) (\\(\$l))\""
  )
  local row name filter
  for row in "${rows[@]}"; do
    name=${row%%|*}
    filter=${row#*|}
    printf '| %s |' "$name"
    for label in "${labels[@]}"; do
      if have "$label"; then
        printf ' %s |' "$(field "$label" "$filter")"
      else
        printf ' not run |'
      fi
    done
    printf '\n'
  done
}

steps_table() {
  local label=$1
  if ! have "$label"; then
    echo "Not run."
    return
  fi
  echo "| events/s | deliveries/s | missing | p50 ms | p99 ms | max ms | server CPU % | CPU-s per M | load generator CPU s | machine busy % | other processes CPU s | clean |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  jq -r '.steps[] | "| \(.rate) | \(.deliveries_per_s) | \(.lost) | \(.latency_ms.p50) | \(.latency_ms.p99) | \(.latency_ms.max) | \(.server_cpu_percent) | \(.server_cpu_s_per_million_deliveries) | \(.loadgen_cpu_s) | \(.machine_busy_percent // "n/a") | \(.other_processes_cpu_s // "n/a") | \(if .clean then "yes" else "no" end) |"' \
    "$results/$label.json"
}

after_lines() {
  local label=$1
  if [ ! -f "$results/$label.after.json" ]; then
    return
  fi
  jq -r '.[] | "- gateway \(.gateway) (pid \(.pid)): \(if .alive then "running" else "**exited during the run**" end) after the clients left, RSS \(.rss_kb_after_clients_left / 1024 | . * 10 | round / 10) MB, \(.log_warnings) warning and \(.log_errors) error lines in its log"' \
    "$results/$label.after.json"
  local detail
  detail=$(field "$label" '.status_detail')
  if [ "$detail" != "n/a" ] && [ -n "$detail" ]; then
    echo "- load generator: $detail"
  fi
}

# Prints the rows of the presence half of a churn run, if it had one.
presence_rows() {
  local label=$1
  if [ "$(field "$label" '.presence.ran')" != true ]; then
    return
  fi
  local check='"\(if .matched then "yes" else "**no**" end): \(.reported) listed, \(.expected) expected, \(.missing) missing, \(.extra) extra, after \(.rounds) query round\(if .rounds == 1 then "" else "s" end) in \(.seconds) s\(if .error != "" then "; last query failed: " + .error else "" end)"'
  printf '| presence channels, members (churning connections that join) | %s, %s |\n' \
    "$(field "$label" '.presence.channels')" "$(field "$label" '.presence.slots')"
  printf '| presence joins after setup (failed) | %s (%s) |\n' \
    "$(field "$label" '.presence.joins_after_setup')" "$(field "$label" '.presence.join_errors')"
  printf '| presence join p50 / p99, ms (pusher:subscribe to subscription_succeeded) | %s / %s |\n' \
    "$(field "$label" '.presence.join_ms.p50')" "$(field "$label" '.presence.join_ms.p99')"
  printf '| member_added / member_removed frames received | %s / %s |\n' \
    "$(field "$label" '.presence.members_added')" "$(field "$label" '.presence.members_removed')"
  printf '| connections subscribed again after churn stopped, s | %s%s |\n' \
    "$(field "$label" '.presence.settle_s')" \
    "$(field "$label" 'if .presence.settled then "" else " (**not all of them**)" end')"
  printf '| member lists exact once churn stopped | %s |\n' "$(field "$label" ".presence.at_end | $check")"
  printf '| member lists empty after every connection closed | %s |\n' \
    "$(field "$label" ".presence.after_close | $check")"
}

# Prints the machine's busy share measured just before LABEL ran.
busy_before() {
  local name=${1//-/_}_busy_before
  echo "${!name:-n/a} %"
}

# Prints the loopback backlog drops and TCP retransmissions during LABEL.
network_during() {
  local drops=${1//-/_}_backlog_drops retrans=${1//-/_}_tcp_retransmits
  echo "${!drops:-n/a} loopback backlog drops and ${!retrans:-n/a} TCP segments retransmitted, machine-wide"
}

# ---- figures for the summary -------------------------------------------

s1_lost=$(field s1-herald '.steps[0].lost')
s1_p99=$(field s1-herald '.steps[0].latency_ms.p99')
s1_base_p99=$(field s1-baseline '.steps[0].latency_ms.p99')
s1_cpu=$(field s1-herald '.steps[0].server_cpu_s_per_million_deliveries')
s1_base_cpu=$(field s1-baseline '.steps[0].server_cpu_s_per_million_deliveries')
s1_cpu_ratio=$(ratio "$s1_cpu" "$s1_base_cpu")
# Every process that serves the events: Herald's gateways, relay and Redis,
# or the baseline processes and their Redis (--aux-pid lists the relay and
# Redis).
all_cpu='.steps[0] | if .delivered > 0 then ((.server_cpu_s + ((.aux_cpu_s // []) | add // 0)) / .delivered * 1000000 * 1000 | round / 1000) else null end'
s1_all_cpu=$(field s1-herald "$all_cpu")
s1_base_all_cpu=$(field s1-baseline "$all_cpu")
s1_all_cpu_ratio=$(ratio "$s1_all_cpu" "$s1_base_all_cpu")
s2_best=$(field s2-herald '.max_clean_deliveries_per_s')
s2_base_best=$(field s2-baseline '.max_clean_deliveries_per_s')
s2_ratio=$(ratio "$s2_best" "$s2_base_best")
s3_growth=$(field s3-herald '.server.rss_growth_bytes_per_connection')
s3_total=$(field s3-herald '.server.rss_bytes_per_connection')
s4_lost=$(field s4-herald '.steps[0].lost')
s4_p99=$(field s4-herald '.steps[0].latency_ms.p99')
# 1 when the member lists matched once churn stopped and were empty after
# every connection closed, 0 when either did not, n/a when not measured.
s4_members_exact=$(field s4-herald 'if .presence.ran then (if .presence.at_end.matched and .presence.after_close.matched then 1 else 0 end) else null end')
s4_members=$(field s4-herald 'if .presence.ran then "\(.presence.at_end.reported) listed of \(.presence.at_end.expected)" else null end')

is() { # prints 1 when the awk condition on $1 holds, n/a when $1 is n/a, else 0
  awk -v v="$1" "BEGIN { if (v == \"n/a\") print \"n/a\"; else print (($2) ? 1 : 0) }"
}

# ---- the page ----------------------------------------------------------

cat <<PAGE
# Benchmarks

Figures from \`bench/run.sh\`, which builds the tree in Release mode, starts
a fresh redis-server, the gateways, the relay and \`herald-baseline\` on
127.0.0.1, drives them with \`herald-loadgen\` and writes this page. Nothing
here is part of the test suite. \`bench/README.md\` explains the tools and
how each figure is measured.

## Run of $date

| | |
| --- | --- |
| command | \`$command\` |
| commit | \`$commit\`${dirty:+ with uncommitted changes in \`$dirty\`} |
| machine | $cores cores, $cpu_model, ${memory_gib} GiB, Linux $kernel |
| Redis | redis-server $redis_version |
| load average before the run | $load_before |

The load generator runs on the same $cores cores as the servers it
measures, so its CPU time is listed beside every figure. Other programs on
the machine were not stopped. Before each measurement \`run.sh\` waits up
to 90 s for the machine to be under 15 % busy. Every table also lists the
CPU time of processes outside the run during the measured window, and
where it is large, those figures are skewed.

## Summary

| scenario | figure | Herald | baseline | Herald / baseline | target | verdict |
| --- | --- | ---: | ---: | ---: | --- | --- |
| S1 dashboard | deliveries missing after the drain | $s1_lost | $(field s1-baseline '.steps[0].lost') | | 0 | $(verdict "$(is "$s1_lost" 'v == 0')") |
| S1 dashboard | latency p99, ms | $s1_p99 | $s1_base_p99 | $(ratio "$s1_p99" "$s1_base_p99") | ≤ 5 | $(verdict "$(is "$s1_p99" 'v <= 5')") |
| S1 dashboard | CPU-s per million deliveries, all serving processes (gateways, relay, Redis) | $s1_all_cpu | $s1_base_all_cpu | $s1_all_cpu_ratio | ≤ 1.5 × baseline | $(verdict "$(is "$s1_all_cpu_ratio" 'v <= 1.5')") |
| S1 dashboard | CPU-s per million deliveries, gateways only | $s1_cpu | $s1_base_cpu | $s1_cpu_ratio | | |
| S2 storm | highest clean deliveries/s | $s2_best | $s2_base_best | $s2_ratio | ≥ 0.70 × baseline | $(verdict "$(is "$s2_ratio" 'v >= 0.7')") |
| S3 idle | RSS growth per idle connection, bytes | $s3_growth | | | ≤ 2048 | $(verdict "$(is "$s3_growth" 'v <= 2048')") |
| S4 churn | deliveries missing after the drain (stable connections) | $s4_lost | | | 0 | $(verdict "$(is "$s4_lost" 'v == 0')") |
| S4 churn | latency p99, ms | $s4_p99 | | | ≤ 5 | $(verdict "$(is "$s4_p99" 'v <= 5')") |
| S4 churn | member lists exact at the end, presence members | $s4_members | | | exact, and empty after close | $(verdict "$s4_members_exact") |

The first CPU row counts every process that serves the events, as the
target does: Herald's gateways, relay and Redis against the baseline
processes and their Redis (the baseline has no HTTP API, so it has no
relay). The second row counts the WebSocket servers alone.

## S1 dashboard

10,000 connections over 100 channels (100 subscribers each) on two
gateways, 1,000 events/s of 100 bytes for 30 s. The baseline takes the
same load on two processes, with events published straight into Redis.
One baseline process alone is near the limit of one core at 100,000
frames/s and falls into loop turns of 100 ms and more (p99 around 250 ms
in earlier runs), so two processes are compared with two gateways.
PAGE

if [ -n "${s1_relay_reason:-}" ]; then
  printf '\nHerald'"'"'s events were published straight into Redis, not through the\nrelay'"'"'s HTTP API: %s.\n' "$s1_relay_reason"
fi

printf '\n'
run_table s1-herald s1-baseline
printf '\nHerald:\n\n'
command_block s1-herald
printf '\nBaseline:\n\n'
command_block s1-baseline
printf '\n'
after_lines s1-herald
printf '\nLoad average after S1: %s.\n' "${load_after_s1:-n/a}"
printf 'Machine busy just before the measurement: %s.\n' "Herald $(busy_before s1-herald), baseline $(busy_before s1-baseline)"
printf 'During s1-herald: %s.\n' "$(network_during s1-herald)"
printf 'During s1-baseline: %s.\n' "$(network_during s1-baseline)"

cat <<PAGE

## S2 storm

10,000 connections on one channel of one server (one gateway, or the
baseline), events published straight into Redis. The rate starts at 100
events/s (1,000,000 deliveries/s) and rises by a fifth every 5 s step. A step is clean when nothing is
lost, duplicated or disconnected, the publisher kept its rate, and p99
latency stays at or below 500 ms; the ramp stops after the first step that
is not clean. Fanning one event out to 10,000 sockets takes tens of
milliseconds even on the baseline, hence the higher latency bound than in
S1. The figure is the highest deliveries/s of a clean step.

Herald:

PAGE
steps_table s2-herald
printf '\n'
command_block s2-herald
printf '\nBaseline:\n\n'
steps_table s2-baseline
printf '\n'
command_block s2-baseline
printf '\n'
after_lines s2-herald
printf '\nLoad average after S2: %s.\n' "${load_after_s2:-n/a}"
printf 'Machine busy just before the measurement: %s.\n' "Herald $(busy_before s2-herald), baseline $(busy_before s2-baseline)"
printf 'During s2-herald: %s.\n' "$(network_during s2-herald)"
printf 'During s2-baseline: %s.\n' "$(network_during s2-baseline)"

cat <<PAGE

## S3 idle

50,000 connections over three gateways (about 16,700 each), subscribed to
500 channels, held for 20 s without events.

| | |
| --- | --- |
| status | $(field s3-herald '.status') |
| connect and subscribe, s | $(field s3-herald '.setup.seconds') |
| subscribed | $(field s3-herald '.setup.subscribed') |
| gateways' RSS before the first connection, MB | $(field s3-herald '.server.rss_kb_before_connect / 1024 | . * 10 | round / 10') |
| gateways' RSS with every connection idle, MB | $(field s3-herald '.server.rss_kb_end / 1024 | . * 10 | round / 10') |
| RSS growth per connection, bytes | $s3_growth |
| RSS per connection, bytes (all RSS / connections) | $s3_total |
| gateways' CPU to accept and subscribe everyone, s | $(field s3-herald '.server.cpu_s_setup') |
| subscribe latency p50 / p99, ms | $(field s3-herald '.setup.subscribe_ms.p50') / $(field s3-herald '.setup.subscribe_ms.p99') |

PAGE
command_block s3-herald
printf '\n'
after_lines s3-herald
printf '\nLoad average after S3: %s.\n' "${load_after_s3:-n/a}"
printf 'Machine busy just before the measurement: %s.\n' "Herald $(busy_before s3-herald)"
printf 'During s3-herald: %s.\n' "$(network_during s3-herald)"

cat <<PAGE

## S4 churn

S1 on two gateways while 200 connections a second close (with a
WebSocket close frame) and reconnect, cycling through a pool of 1,000 of
the 10,000 connections; each reconnects and resubscribes at once. Loss is
counted on the 9,000 stable connections.

Half of the churning connections (500) also join one of 10 presence
channels after every connect, with a signed \`channel_data\` whose
\`user_id\` stays the same across reconnections. Each of them reconnects
to the other gateway than the time before. When churn stops and every
connection is subscribed again, the load generator compares, for each
channel, the ids of the connections whose join was confirmed with those
of \`GET /apps/{app_id}/channels/{channel}/users\` on the relay. It
compares again after all connections have closed, when the lists must be
empty. Each
comparison is repeated every 200 ms for at most 10 s, because a gateway
removes a closed connection's membership a moment after the close.
PAGE

if [ -n "${s4_presence_reason:-}" ]; then
  printf '\nThe presence half was not measured: %s.\n' "$s4_presence_reason"
fi

if [ -n "${s4_relay_reason:-}" ]; then
  printf '\nHerald'"'"'s events were published straight into Redis, not through the\nrelay'"'"'s HTTP API: %s.\n' "$s4_relay_reason"
fi

printf '\n'
run_table s4-herald
if have s4-herald; then
  printf '| churn closes done | %s |\n' "$(field s4-herald '.steps[0].churn_closed')"
  printf '| reconnect to subscription_succeeded p50 / p99, ms | %s / %s |\n' \
    "$(field s4-herald '.steps[0].resubscribe_ms.p50')" "$(field s4-herald '.steps[0].resubscribe_ms.p99')"
  printf '| gateways'"'"' RSS once subscribed / at the end, MB | %s / %s |\n' \
    "$(field s4-herald '.server.rss_kb_subscribed / 1024 | . * 10 | round / 10')" \
    "$(field s4-herald '.server.rss_kb_end / 1024 | . * 10 | round / 10')"
  presence_rows s4-herald
fi
printf '\n'
command_block s4-herald
printf '\n'
after_lines s4-herald
printf '\nLoad average after S4: %s.\n' "${load_after_s4:-n/a}"
printf 'Machine busy just before the measurement: %s.\n' "Herald $(busy_before s4-herald)"
printf 'During s4-herald: %s.\n' "$(network_during s4-herald)"

printf '\n%s\n' "$marker"
if [ -n "$old_page" ] && [ -f "$old_page" ] && grep -qF "$marker" "$old_page"; then
  sed -n "/^$(printf '%s' "$marker" | sed 's/[][\/.*^$]/\\&/g')\$/,\$p" "$old_page" | tail -n +2
fi
