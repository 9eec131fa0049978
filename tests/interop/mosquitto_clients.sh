#!/usr/bin/env bash
# Interop check with mosquitto-clients, the commands of the original deployment:
#   mosquitto_sub -h 127.0.0.1 -p PORT -c -i client_id_test_10007 -t user/10007 -q 1
#   mosquitto_pub -h 127.0.0.1 -p PORT -i app_service -t user/10007 -m test -q 1
# 1. online: the subscriber receives the message;
# 2. offline: subscriber stopped, message published, subscriber restarted with
#    the same id receives it (persistent session, QoS 1 queued);
# 3. the same with --cores 4 and with the epoll driver;
# 4. MQTT 5 clients (-V 5), checks in mosquitto_v5.sh.
# Fails (exit 1) when a message does not arrive. Usage: mosquitto_clients.sh [BINARY]
set -euo pipefail
BIN=${1:-target/debug/ringmq}
PORT=${PORT:-18831}
H=127.0.0.1
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v mosquitto_sub >/dev/null || fail "mosquitto_sub not installed (apt-get install mosquitto-clients)"

run_scenario() {
    local label=$1; shift
    "$BIN" --listen "$H:$PORT" --log-level warn "$@" &
    local broker=$!
    # EXIT too: fail() exits from here, and a broker left behind would share
    # the port with the next one (ringmq listens with SO_REUSEPORT).
    trap 'kill ${broker:-} 2>/dev/null || true' RETURN EXIT
    for _ in $(seq 50); do
        mosquitto_pub -h $H -p $PORT -t ping -m x 2>/dev/null && break
        sleep 0.1
    done

    # 1. online delivery
    local out
    out=$(mktemp)
    timeout 10 mosquitto_sub -h $H -p $PORT -c -i client_id_test_10007 -t user/10007 -q 1 -C 1 >"$out" &
    local sub=$!
    sleep 0.5
    mosquitto_pub -h $H -p $PORT -i app_service -t user/10007 -m test -q 1
    wait $sub || fail "$label: online subscriber got nothing"
    [ "$(cat "$out")" = "test" ] || fail "$label: online subscriber got '$(cat "$out")'"

    # 2. offline delivery: the session of client_id_test_10007 persists (-c)
    mosquitto_pub -h $H -p $PORT -i app_service -t user/10007 -m offline-1 -q 1
    mosquitto_pub -h $H -p $PORT -i app_service -t user/10007 -m offline-2 -q 1
    timeout 10 mosquitto_sub -h $H -p $PORT -c -i client_id_test_10007 -t user/10007 -q 1 -C 2 >"$out" \
        || fail "$label: restarted subscriber did not receive the queued messages"
    [ "$(tr '\n' ' ' <"$out")" = "offline-1 offline-2 " ] || fail "$label: restarted subscriber got '$(cat "$out")'"

    # 3. QoS 2 and retained, with a plain non-persistent subscriber
    mosquitto_pub -h $H -p $PORT -t status/1 -m up -q 2 -r
    timeout 10 mosquitto_sub -h $H -p $PORT -t 'status/#' -q 2 -C 1 -v >"$out" \
        || fail "$label: retained message not delivered"
    [ "$(cat "$out")" = "status/1 up" ] || fail "$label: retained got '$(cat "$out")'"
    rm -f "$out"
    kill $broker
    wait $broker 2>/dev/null || true
    echo "ok: mosquitto-clients $label"
}

run_scenario "--cores 1" --cores 1
run_scenario "--cores 4" --cores 4
run_scenario "--cores 2 --io epoll" --cores 2 --io epoll

# 4. MQTT 5 (-V 5): the same three broker set-ups.
bash "$(dirname "$0")/mosquitto_v5.sh" "$BIN"
echo "mosquitto-clients interop: all scenarios passed"
