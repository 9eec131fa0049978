#!/usr/bin/env bash
# Runs the MQTT 5 interop checks against a local mosquitto broker (the
# `mosquitto` package), to tell a wrong check from a ringmq bug: what passes
# here and fails on ringmq is ringmq's. Not part of CI. Checks where mosquitto
# 2.0 itself differs from docs/mqtt5.md (or from MQTT 5) are skipped:
#   subscription_identifiers / subscriptionIdentifiers: mosquitto sends one copy
#     per matching subscription, docs/mqtt5.md asks for one copy with all ids;
#   suback_unsuback_codes: mosquitto disconnects on an invalid filter (0x8F asked);
#   session_takeover / sessionTakeover: mosquitto closes without DISCONNECT 0x8E;
#   receive_maximum_of_client: mosquitto sends past the client's Receive Maximum;
#   topicAliasToClient: mosquitto sends no topic aliases to clients;
#   problem_information: (as suback_unsuback_codes) mosquitto disconnects;
#   keep_alive_timeout: mosquitto closes without DISCONNECT 0x8D;
#   shared_subscription: mosquitto 2.0.11 sends retained messages to a new
#     shared subscription (MQTT 5 says not to);
#   message_expiry_not_late: mosquitto counts expiry in whole seconds and
#     delivers a 1 s message up to a second late (docs/mqtt5.md: never late).
# Usage: reference_mosquitto.sh   (checks also run in their *_pending.* form)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE"
PORT=${PORT:-18898}
command -v mosquitto >/dev/null || { echo "mosquitto not installed (apt-get install mosquitto)" >&2; exit 1; }
conf=$(mktemp)
cat >"$conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_topic_alias 1024
max_inflight_messages 1024
max_keepalive 600
EOF
mosquitto -c "$conf" >/dev/null 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true; rm -f "$conf"' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
python3 -c "import paho.mqtt" 2>/dev/null || pip install -q "paho-mqtt>=2,<3"
[ -d node_modules/mqtt ] || npm install --silent --no-save --no-package-lock mqtt@5 >/dev/null
export MAX_KEEPALIVE=600
PAHO_SKIP='subscription_identifiers|suback_unsuback_codes|session_takeover|receive_maximum_of_client'
PAHO_SKIP+='|problem_information|keep_alive_timeout|shared_subscription|message_expiry_not_late'
status=0
for f in paho_v5_check.py paho_v5_timing_check.py; do
    [ -f "$f" ] || continue
    echo "== $f"
    timeout 120 python3 "$f" "$PORT" $(python3 "$f" --names 2>/dev/null | tr ' ' '\n' \
        | grep -xE "$PAHO_SKIP" \
        | sed 's/^/-/') || status=1
done
for f in mqttjs_v5_check.js mqttjs_v5_check_pending.js; do
    [ -f "$f" ] || continue
    echo "== $f"
    timeout 120 node "$f" "$PORT" $(node "$f" --names 2>/dev/null | tr ' ' '\n' \
        | grep -xE 'subscriptionIdentifiers|sessionTakeover|topicAliasToClient' | sed 's/^/-/') || status=1
done
for f in mosquitto_v5.sh mosquitto_v5_pending.sh; do
    [ -f "$f" ] || continue
    echo "== $f"
    BROKER_PORT=$PORT timeout 120 bash "$f" || status=1
done
exit $status
