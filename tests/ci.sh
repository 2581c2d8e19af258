#!/usr/bin/env bash
# The whole test suite: unit and integration tests (crates only), then the
# checks against real players from Debian (installed by the scripts), a
# new user's first hour from a clean clone, Icecast, and the console in a
# real Chromium.
#
# Release profile, like `cargo run --release`: after running the station
# once, the tests build only themselves, not every dependency again.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release
bash tests/real_clients.sh
bash tests/first_hour.sh
bash tests/icecast.sh
bash tests/console.sh
