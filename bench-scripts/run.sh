#!/usr/bin/env bash
# Installs the peer brokers from package registries, builds ringmq in release
# mode, and runs bench.py (all scenarios, every broker, one at a time).
#   mosquitto  Debian package (apt-get)
#   rumqttd    crates.io (cargo install), into bench-scripts/.peers/rumqttd
#   aedes      npm, into bench-scripts/.peers/aedes
#   EMQX, NanoMQ: used when `emqx` / `nanomq` are on PATH (no registry ships them)
# Usage: bench-scripts/run.sh [--quick] [--only a,b] [--brokers x,y]
# PEERS_DIR overrides where the peers are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS_DIR=${PEERS_DIR:-bench-scripts/.peers}
export PEERS_DIR
mkdir -p "$PEERS_DIR"

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    apt-get install -y -qq mosquitto >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq mosquitto; }
    # The Debian package starts a system broker on 1883; the benchmark runs its own.
    (systemctl stop mosquitto 2>/dev/null || service mosquitto stop 2>/dev/null || pkill -x mosquitto) || true
fi
if [ ! -x "$PEERS_DIR/rumqttd/bin/rumqttd" ]; then
    echo "installing rumqttd from crates.io (a few minutes)..." >&2
    cargo install rumqttd --root "$PEERS_DIR/rumqttd" >&2
fi
if [ ! -d "$PEERS_DIR/aedes/node_modules/aedes" ]; then
    (cd "$PEERS_DIR" && mkdir -p aedes && cd aedes && npm init -y >/dev/null && npm install --silent aedes@0.51) >&2
fi
python3 -c "import matplotlib" 2>/dev/null || pip install -q matplotlib >&2

cargo build --release --bins >&2
ulimit -n "$(ulimit -Hn)"
exec python3 bench-scripts/bench.py "$@"
