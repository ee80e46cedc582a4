#!/usr/bin/env bash
# free-ports.sh [N]: prints N (default 1) distinct loopback TCP ports on one
# line, that nothing listens on, for servers a script is about to start.
#
# They are chosen away from every port something else on the machine picks
# by itself: above the kernel's ephemeral range (32768-60999 by default),
# where no outgoing connection takes one meanwhile, and outside 10000-31999,
# where the test support and the local cluster pick theirs and where the
# demo's defaults (18080-18083) lie. So a developer's own `make demo`,
# `make cluster` or `make test` never races for them.
set -euo pipefail
n="${1:-1}"
read -r ephemeral_low ephemeral_high </proc/sys/net/ipv4/ip_local_port_range

# The first of these ranges that holds enough ports: above the ephemeral
# range; between 31999 and the ephemeral range; below 10000.
above_low="$((ephemeral_high < 32000 ? 32000 : ephemeral_high + 1))"
below_high="$((ephemeral_low <= 10000 ? ephemeral_low - 1 : 9999))"
low=0 high=0
for range in "$above_low 65535" "32000 $((ephemeral_low - 1))" "1024 $below_high"; do
  read -r l h <<<"$range"
  if [ "$((h - l))" -ge "$((100 * n))" ]; then low="$l" high="$h"; break; fi
done
if [ "$high" -eq 0 ]; then
  echo "free-ports.sh: no room for $n ports outside 10000-31999 and the ephemeral range ($ephemeral_low-$ephemeral_high)" >&2
  exit 1
fi

# listening PORT: whether a server accepts connections on 127.0.0.1:PORT.
listening() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

chosen=()
for _ in $(seq 1 1000); do
  [ "${#chosen[@]}" -lt "$n" ] || break
  port="$((low + (RANDOM * 32768 + RANDOM) % (high - low + 1)))"
  case " ${chosen[*]} " in *" $port "*) continue ;; esac
  listening "$port" || chosen+=("$port")
done
if [ "${#chosen[@]}" -lt "$n" ]; then
  echo "free-ports.sh: found only ${#chosen[@]} of $n free ports in $low-$high" >&2
  exit 1
fi
echo "${chosen[*]}"
