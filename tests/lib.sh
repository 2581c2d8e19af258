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
