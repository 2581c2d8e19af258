#!/usr/bin/env bash
# The whole test suite: unit and integration tests (crates only), then the
# checks against real players from Debian (installed by the script).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test
bash tests/real_clients.sh
