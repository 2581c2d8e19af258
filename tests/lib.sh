# Shared by the test scripts (sourced): Debian programs installed with
# apt-get when missing, and the ok/FAIL lines with their count.

# need TOOL[=PACKAGE]... : installs the package of every missing tool.
need() {
  local pkgs=() spec sudo=""
  for spec in "$@"; do
    command -v "${spec%%=*}" >/dev/null || pkgs+=("${spec#*=}")
  done
  ((${#pkgs[@]})) || return 0
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing ${pkgs[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

failures=0
pass() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; failures=$((failures + 1)); }

# listening PID OUT ERR [TENTHS]: waits (TENTHS × 0.1 s, default 600) for
# the station started as PID to print "listening on http://ADDR" to OUT and
# sets addr; fails, printing ERR, if it exits first.
listening() {
  local pid=$1 out=$2 err=$3 tries=${4:-600}
  addr=""
  for _ in $(seq 1 "$tries"); do
    addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$out" | head -n1)
    [ -n "$addr" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$err"; return 1; }
    sleep 0.1
  done
  return 1
}
