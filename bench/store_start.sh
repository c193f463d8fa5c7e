#!/usr/bin/env bash
# The embedded store as a person meets it (issue 12, item 8): import 100,000 contacts
# from a Thunderbird CSV with the CLI, then the store's size on disk, a `serve`'s idle
# RSS, and how long after a start the first search answers (through the CLI, so it
# includes starting `crmproxy search`). Uses the release binary; loopback only (the
# upstream is never contacted). Usage: bash bench/store_start.sh [CONTACTS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
cargo build --release --quiet
bin=$PWD/target/release/crmproxy
work=$(mktemp -d /tmp/crmproxy-store-start.XXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
pid=
python3 - "$n" "$work/contacts.csv" <<'PY'
import csv, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(7)
first = "Ada Alan Anna Björn Carla Chen Dario Elena Émile Fatima Felix Grace Hana Igor Ines Jamal José Julia Kenji Lena Luca Maria Mei Nadia Omar Paula Priya Rafael Sara Søren Tomás Uma Victor Wei Yara Zoë".split()
last = "Abbott Álvarez Bauer Chen Dubois Eriksen Fischer García Hoffmann Ito Jensen Kowalski Lefèvre Müller Nakamura Novak Okafor Petrov Quinn Rossi Schmidt Tanaka Urban Vogel Weber Xu Young Zimmermann".split()
companies = "Contoso Fabrikam Northwind Tailspin Litware Proseware Adatum Woodgrove Lucerne Wingtip".split()
with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["First Name", "Last Name", "Display Name", "Primary Email", "Work Phone", "Job Title",
                "Department", "Organization", "Work Address", "Work City", "Work ZipCode", "Work Country"])
    for i in range(n):
        fn, ln, c = random.choice(first), random.choice(last), random.choice(companies)
        local = f"{fn}.{ln}{i}".lower().encode("ascii", "ignore").decode()
        w.writerow([fn, ln, f"{fn} {ln}", f"{local}@{c.lower()}{i % 500}.example", f"+1 555 {i:07d}",
                    random.choice(["Buyer", "CTO", "Engineer", "Sales Lead"]), random.choice(["Sales", "IT"]),
                    f"{c} {i % 500}", f"{i} Main Street", "Springfield", f"{10000 + i % 8999}", "US"])
PY
data=$work/data
/usr/bin/time -f "%e %U %M" -o "$work/import.time" "$bin" --data-dir "$data" import "$work/contacts.csv" >/dev/null
read -r wall user peak <"$work/import.time"
echo "| contacts | $n |"
echo "| import (CLI): wall / CPU / peak RSS | ${wall} s / ${user} s / $((peak / 1024)) MB |"
echo "| on disk: store (sled db + search snapshot) | $(du -sm "$data/store" | cut -f1) MB ($(du -sm "$data/store/db" | cut -f1) MB db) |"
"$bin" --data-dir "$data" serve --imap 127.0.0.1:0 --imaps off --pane off \
  --upstream 127.0.0.1:1 --upstream-tls plain >/dev/null 2>"$work/serve.err" &
pid=$!
t0=$(date +%s.%N)
until grep -q "listening imap" "$work/serve.err"; do sleep 0.01; done
"$bin" --data-dir "$data" search "zoë müll" >/dev/null
t1=$(date +%s.%N)
echo "| first search after a start (serve start + CLI search) | $(python3 -c "print(round($t1 - $t0, 2))") s |"
sleep 15
echo "| idle serve RSS (VmRSS / VmHWM) | $(($(awk '/VmRSS/{print $2}' /proc/$pid/status) / 1024)) / $(($(awk '/VmHWM/{print $2}' /proc/$pid/status) / 1024)) MB |"
