#!/usr/bin/env bash
# Runs the proxy benchmark: builds crmproxy in release mode, starts a private Dovecot,
# crmproxy and `socat -b 262144` on loopback, and prints a markdown table.
# Needs dovecot-imapd and socat (tests/run installs them on Debian). Tunables:
# BENCH_ROUNDS, BENCH_MAILBOX_MB, BENCH_IDLE, BENCH_NOOPS.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --locked --bench proxy "$@"
