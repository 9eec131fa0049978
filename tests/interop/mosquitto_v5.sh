#!/usr/bin/env bash
# MQTT 5 checks with mosquitto-clients (-V 5, -D properties, -F formats),
# following docs/mqtt5.md; run by mosquitto_clients.sh. Clients without -i
# send an empty client id (the broker must assign one). Fails (exit 1) with a
# message naming the check.
# Usage: mosquitto_v5.sh [BINARY] [CHECK ...]   starts ringmq (--cores 1, 4,
#                                               and 2 on epoll) for each pass
#        BROKER_PORT=N mosquitto_v5.sh [BINARY] [CHECK ...]   against a broker on N
#        mosquitto_v5.sh --names                lists the checks
# A mosquitto_v5_pending.sh, when there is one, sources it and sets CHECKS
# to the checks that main fails.
set -euo pipefail
H=127.0.0.1
fail() { echo "FAIL (mosquitto-clients MQTT 5): $*" >&2; exit 1; }

# One v5 subscriber in the background, output to $1; stops after -C N
# messages or 8 s without one (-W), whichever first.
v5sub() {
    local out=$1; shift
    timeout 10 mosquitto_sub -V 5 -h $H -p "$PORT" -W 8 "$@" >"$out" 2>&1 &
}
v5pub() { timeout 10 mosquitto_pub -V 5 -h $H -p "$PORT" "$@"; }
settle() { sleep 0.5; } # let a background subscriber's SUBSCRIBE land

# Each check uses $label, $run (unique per pass), $out/$out2 (scratch files),
# $sub/$sub2 (background pids).

v5_props() {
    # Publish properties forwarded unchanged (user properties in order);
    # no -i: the broker assigns the client ids.
    v5sub "$out" -t "v5/$run/props" -q 1 -C 1 -F '%t|%p|%q|%C|%R|%D|%F|%P'
    sub=$!
    settle
    v5pub -t "v5/$run/props" -m hello -q 1 \
        -D publish user-property k1 v1 -D publish user-property k2 "v 2" -D publish user-property k1 v3 \
        -D publish content-type text/plain -D publish response-topic "v5/$run/reply" \
        -D publish correlation-data corr-1 -D publish payload-format-indicator 1 \
        || fail "$label: mosquitto_pub -V 5 with properties failed (its error is above)"
    wait $sub || fail "$label: properties: subscriber got nothing: $(cat "$out")"
    [ "$(cat "$out")" = "v5/$run/props|hello|1|text/plain|v5/$run/reply|corr-1|1|k1:v1 k2:v 2 k1:v3" ] \
        || fail "$label: properties: subscriber printed '$(cat "$out")'"
}

v5_sid() {
    # Subscription identifier.
    v5sub "$out" -t "v5/$run/sid/#" -q 1 -C 1 -D subscribe subscription-identifier 77 -F '%S %p'
    sub=$!
    settle
    v5pub -t "v5/$run/sid/a" -m s -q 1
    wait $sub || fail "$label: subscription identifier: subscriber got nothing"
    [ "$(cat "$out")" = "77 s" ] || fail "$label: subscription identifier: got '$(cat "$out")', expected '77 s'"
}

v5_alias_from_client() {
    # Topic alias from the client: mosquitto_pub -l sends the topic with the
    # alias once, then the alias alone.
    v5sub "$out" -t "v5/$run/alias" -q 1 -C 3 -v
    sub=$!
    settle
    printf 'l1\nl2\nl3\n' | v5pub -t "v5/$run/alias" -l -q 1 -D publish topic-alias 1
    wait $sub || fail "$label: topic alias: subscriber got '$(cat "$out")'"
    [ "$(tr '\n' ' ' <"$out")" = "v5/$run/alias l1 v5/$run/alias l2 v5/$run/alias l3 " ] \
        || fail "$label: topic alias: got '$(cat "$out")'"
}

v5_request_response() {
    # Request/response: mosquitto_rr sends Response Topic and Correlation
    # Data; a responder answers on that topic with the same data.
    (timeout 10 mosquitto_sub -V 5 -h $H -p "$PORT" -W 8 -t "v5/$run/svc" -C 1 -F '%R %D' \
        | while read -r rt cd; do v5pub -t "$rt" -m "pong" -q 1 -D publish correlation-data "$cd"; done) &
    sub=$!
    settle
    timeout 10 mosquitto_rr -V 5 -h $H -p "$PORT" -t "v5/$run/svc" -e "v5/$run/resp" -m ping -W 8 \
        -D publish correlation-data "c-$run" -F '%t %p %D' >"$out" \
        || fail "$label: mosquitto_rr got no response"
    wait $sub || true
    [ "$(cat "$out")" = "v5/$run/resp pong c-$run" ] || fail "$label: request/response: got '$(cat "$out")'"
}

v5_persistent_session() {
    # Persistent session with Session Expiry: QoS 1 messages queued while
    # offline arrive with their properties.
    local cid="v5-sess-$run"
    v5sub "$out" -c -x 60 -i "$cid" -t "v5/$run/user" -q 1 -C 1
    sub=$!
    settle
    v5pub -t "v5/$run/user" -m online -q 1
    wait $sub || fail "$label: session: online subscriber got nothing"
    v5pub -t "v5/$run/user" -m offline-1 -q 1 -D publish user-property n 1
    v5pub -t "v5/$run/user" -m offline-2 -q 1 -D publish user-property n 2
    timeout 10 mosquitto_sub -V 5 -h $H -p "$PORT" -W 8 -c -x 60 -i "$cid" -t "v5/$run/user" -q 1 -C 2 \
        -F '%p %P' >"$out" || fail "$label: restarted v5 subscriber did not receive the queued messages: '$(cat "$out")'"
    [ "$(tr '\n' ' ' <"$out")" = "offline-1 n:1 offline-2 n:2 " ] \
        || fail "$label: restarted v5 subscriber got '$(cat "$out")'"
    # ...and a queued message whose Message Expiry (1 s) passed is dropped.
    # (Another session: mosquitto_sub -C may disconnect before its last
    # PUBACK is out, and then offline-2 is rightly sent again.)
    cid="v5-exp-$run"
    timeout 10 mosquitto_sub -V 5 -h $H -p "$PORT" -c -x 60 -i "$cid" -t "v5/$run/exp1" -q 1 -E >/dev/null \
        || fail "$label: expiry: subscribe failed"
    v5pub -t "v5/$run/exp1" -m short-lived -q 1 -D publish message-expiry-interval 1
    sleep 2.5
    v5pub -t "v5/$run/exp1" -m marker -q 1
    timeout 10 mosquitto_sub -V 5 -h $H -p "$PORT" -W 8 -c -x 0 -i "$cid" -t "v5/$run/exp1" -q 1 -C 1 \
        >"$out" || fail "$label: expiry: restarted subscriber got nothing"
    [ "$(cat "$out")" = "marker" ] || fail "$label: expired queued message delivered: got '$(cat "$out")'"
}

v5_session_expiry() {
    # Session Expiry 1 s: after 2.5 s the session is gone (nothing queued).
    cid="v5-short-$run"
    timeout 10 mosquitto_sub -V 5 -h $H -p "$PORT" -c -x 1 -i "$cid" -t "v5/$run/short" -q 1 -E >/dev/null \
        || fail "$label: session expiry: subscribe failed"
    v5pub -t "v5/$run/short" -m too-late -q 1
    sleep 2.5
    timeout 10 mosquitto_sub -V 5 -h $H -p "$PORT" -W 1 -c -x 0 -i "$cid" -t "v5/$run/other" -q 1 -C 1 \
        >"$out" 2>/dev/null || true
    if grep -q too-late "$out"; then
        fail "$label: message delivered from a session past its Session Expiry Interval"
    fi
}

v5_will_delay() {
    # Will with Will Delay Interval: not sent when the client reconnects
    # within the delay; sent after it otherwise.
    v5sub "$out" -t "v5/$run/will/#" -q 1 -C 1 -v
    sub=$!
    settle
    cid="v5-will-$run"
    mosquitto_sub -V 5 -h $H -p "$PORT" -c -x 60 -i "$cid" -t "v5/$run/dummy" \
        --will-topic "v5/$run/will/a" --will-payload a-gone --will-qos 1 -D will will-delay-interval 2 \
        -D will user-property w 1 >/dev/null 2>&1 &
    sub2=$!
    settle
    kill -9 $sub2
    wait $sub2 2>/dev/null || true
    timeout 10 mosquitto_sub -V 5 -h $H -p "$PORT" -W 3 -c -x 0 -i "$cid" -t "v5/$run/dummy" >/dev/null 2>&1 || true
    mosquitto_sub -V 5 -h $H -p "$PORT" -x 60 -i "$cid-b" -t "v5/$run/dummy" \
        --will-topic "v5/$run/will/b" --will-payload b-gone --will-qos 1 -D will will-delay-interval 1 \
        >/dev/null 2>&1 &
    sub2=$!
    settle
    kill -9 $sub2
    wait $sub2 2>/dev/null || true
    wait $sub || fail "$label: will: delayed will never arrived"
    [ "$(cat "$out")" = "v5/$run/will/b b-gone" ] \
        || fail "$label: will: got '$(cat "$out")' (will a must not be sent: its client reconnected in time)"
}

v5_retain_as_published() {
    # Retain As Published.
    v5sub "$out" -t "v5/$run/rap" -q 1 -C 1 --retain-as-published -F '%r %p'
    sub=$!
    v5sub "$out2" -t "v5/$run/rap" -q 1 -C 1 -F '%r %p'
    sub2=$!
    settle
    v5pub -t "v5/$run/rap" -m live -q 1 -r
    wait $sub && wait $sub2 || fail "$label: retain as published: a subscriber got nothing"
    [ "$(cat "$out")" = "1 live" ] || fail "$label: with --retain-as-published got '$(cat "$out")', expected '1 live'"
    [ "$(cat "$out2")" = "0 live" ] || fail "$label: without --retain-as-published got '$(cat "$out2")', expected '0 live'"
    v5pub -t "v5/$run/rap" -n -q 1 -r
}

v5_mixed_versions() {
    # 3.1.1 and v5 clients on one topic, both ways.
    timeout 10 mosquitto_sub -V mqttv311 -h $H -p "$PORT" -W 8 -t "v5/$run/mix" -q 1 -C 2 >"$out" 2>&1 &
    sub=$!
    v5sub "$out2" -t "v5/$run/mix" -q 1 -C 2 -F '%p|%C|%P'
    sub2=$!
    settle
    v5pub -t "v5/$run/mix" -m from-v5 -q 1 -D publish user-property from v5 -D publish content-type text/plain
    timeout 10 mosquitto_pub -V mqttv311 -h $H -p "$PORT" -t "v5/$run/mix" -m from-v311 -q 1
    wait $sub || fail "$label: mixed: 3.1.1 subscriber got '$(cat "$out")'"
    wait $sub2 || fail "$label: mixed: v5 subscriber got '$(cat "$out2")'"
    [ "$(tr '\n' ' ' <"$out")" = "from-v5 from-v311 " ] || fail "$label: mixed: 3.1.1 subscriber got '$(cat "$out")'"
    [ "$(tr '\n' ' ' <"$out2")" = "from-v5|text/plain|from:v5 from-v311|| " ] \
        || fail "$label: mixed: v5 subscriber got '$(cat "$out2")'"
}

v5_expiry_remaining() {
    # A message published with Message Expiry Interval 60 and delivered at
    # once arrives with 59..60 left, never more (cores' clocks differ by up
    # to a tick).
    local i
    for i in 1 2 3 4 5; do
        v5sub "$out" -t "v5/$run/exp" -q 1 -C 1 -F '%E'
        sub=$!
        settle
        v5pub -t "v5/$run/exp" -m e -q 1 -D publish message-expiry-interval 60
        wait $sub || fail "$label: message expiry: subscriber got nothing"
        case "$(cat "$out")" in 59|60) ;; *) fail "$label: Message Expiry Interval 60 arrived as '$(cat "$out")' (try $i)" ;; esac
    done
}

CHECKS=(v5_props v5_sid v5_alias_from_client v5_request_response v5_persistent_session v5_session_expiry
    v5_will_delay v5_retain_as_published v5_mixed_versions v5_expiry_remaining)

v5_pass() {
    label=$1
    shift
    run=$RANDOM$RANDOM
    local c
    for c in "$@"; do
        "$c"
    done
    echo "ok: mosquitto-clients MQTT 5 $label ($*)"
}

v5_main() {
    if [ "${1:-}" = --names ]; then
        echo "${CHECKS[*]}"
        exit 0
    fi
    BIN=${1:-target/debug/ringmq}
    [ $# -gt 0 ] && shift
    local want=("$@")
    [ ${#want[@]} -gt 0 ] || want=("${CHECKS[@]}")
    command -v mosquitto_sub >/dev/null || fail "mosquitto_sub not installed (apt-get install mosquitto-clients)"
    TMPD=$(mktemp -d)
    out=$TMPD/out
    out2=$TMPD/out2
    BROKER=
    # On any exit (fail() exits from inside a pass): stop the broker, since
    # one left behind would share the port with the next (SO_REUSEPORT).
    trap '[ -z "$BROKER" ] || kill $BROKER 2>/dev/null; rm -rf "$TMPD"' EXIT
    if [ -n "${BROKER_PORT:-}" ]; then
        PORT=$BROKER_PORT
        v5_pass "port $PORT" "${want[@]}"
        return
    fi
    PORT=${PORT:-18833}
    local args
    for args in "--cores 1" "--cores 4" "--cores 2 --io epoll"; do
        # shellcheck disable=SC2086
        "$BIN" --listen "$H:$PORT" --log-level warn $args &
        BROKER=$!
        for _ in $(seq 50); do
            mosquitto_pub -h $H -p "$PORT" -t ping -m x 2>/dev/null && break
            sleep 0.1
        done
        v5_pass "$args" "${want[@]}"
        kill $BROKER
        wait $BROKER 2>/dev/null || true
        BROKER=
    done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    v5_main "$@"
fi
