#!/usr/bin/env bash
# Runs the paho-mqtt (Python) and MQTT.js (Node) interop checks, MQTT 3.1.1
# and MQTT 5, against a ringmq started here, with --cores 1 and --cores 4.
# Installs the client libraries when missing (pip, npm into
# tests/interop/node_modules). The broker gets --max-keepalive 600 so that
# the v5 checks see Server Keep Alive (the 3.1.1 clients ask for less); then
# one more broker with the v5 feature keys changed, for paho_v5_config_check.py.
# Usage: run_clients.sh [BINARY]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(realpath "${1:-$HERE/../../target/debug/ringmq}")
cd "$HERE"
PORT=${PORT:-18832}
python3 -c "import paho.mqtt" 2>/dev/null || pip install -q "paho-mqtt>=2,<3"
[ -d node_modules/mqtt ] || npm install --silent --no-save --no-package-lock mqtt@5 >/dev/null
for cores in 1 4; do
    "$BIN" --listen "127.0.0.1:$PORT" --cores "$cores" --max-keepalive 600 --log-level warn &
    broker=$!
    trap 'kill $broker 2>/dev/null || true' EXIT
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
    timeout 60 python3 paho_check.py "$PORT"
    timeout 60 node mqttjs_check.js "$PORT"
    MAX_KEEPALIVE=600 timeout 120 python3 paho_v5_check.py "$PORT"
    timeout 120 node mqttjs_v5_check.js "$PORT"
    timeout 180 python3 paho_v5_timing_check.py "$PORT"
    kill $broker; wait $broker 2>/dev/null || true
    echo "ok: client libraries against --cores $cores"
done

# MQTT 5 with every v5 feature key away from its default (the flags are in
# paho_v5_config_check.py), on two cores.
CPORT=$((PORT + 1))
# shellcheck disable=SC2046
"$BIN" --listen "127.0.0.1:$CPORT" --cores 2 --log-level error $(python3 paho_v5_config_check.py --flags) &
broker=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$CPORT") 2>/dev/null && break; sleep 0.1; done
timeout 120 python3 paho_v5_config_check.py "$CPORT"
kill $broker; wait $broker 2>/dev/null || true
echo "ok: client libraries against a configured broker"
