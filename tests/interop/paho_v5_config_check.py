#!/usr/bin/env python3
"""MQTT 5 checks with paho-mqtt 2.x against a ringmq started with every v5
feature key away from its default (docs/mqtt5.md): the CONNACK tells the
truth and the broker enforces what it advertised. run_clients.sh starts that
broker with FLAGS below; helpers come from paho_v5_check.py.

Usage: paho_v5_config_check.py PORT [CHECK ...] [-CHECK ...] | --flags | --names
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paho_v5_check import (RUN, CheckFailed, Client, PacketTypes, SubscribeOptions, expect_eq,  # noqa: E402
                           expect_payload, fail, main, make_props, raw_connect, raw_publish, raw_read)

RECEIVE_MAXIMUM = 16
TOPIC_ALIAS_MAXIMUM = 8
MAX_SESSION_EXPIRY = 100
MAX_KEEPALIVE = 60
RESPONSE_INFORMATION = "resp/"
FLAGS = (f"--receive-maximum {RECEIVE_MAXIMUM} --max-topic-alias {TOPIC_ALIAS_MAXIMUM} --max-qos 1 "
         f"--retain-available false --wildcard-subscriptions false --subscription-identifiers false "
         f"--shared-subscriptions false --max-session-expiry {MAX_SESSION_EXPIRY} "
         f"--max-keepalive {MAX_KEEPALIVE} --response-information {RESPONSE_INFORMATION}")


def check_connack_from_config():
    """CONNACK properties follow the configuration."""
    c = Client(f"p5c-connack-{RUN}")
    p = c.connack
    expect_eq("CONNACK Receive Maximum", p.get("ReceiveMaximum"), RECEIVE_MAXIMUM)
    expect_eq("CONNACK Topic Alias Maximum", p.get("TopicAliasMaximum"), TOPIC_ALIAS_MAXIMUM)
    expect_eq("CONNACK Maximum QoS", p.get("MaximumQoS"), 1)
    expect_eq("CONNACK Retain Available", p.get("RetainAvailable"), 0)
    expect_eq("CONNACK Wildcard Subscription Available", p.get("WildcardSubscriptionAvailable"), 0)
    expect_eq("CONNACK Subscription Identifiers Available", p.get("SubscriptionIdentifierAvailable"), 0)
    expect_eq("CONNACK Shared Subscription Available", p.get("SharedSubscriptionAvailable"), 0)
    expect_eq("CONNACK Response Information (not requested)", p.get("ResponseInformation"), None)
    c.stop()


def check_session_expiry_cap():
    """A Session Expiry Interval above max_session_expiry is answered with the cap."""
    c = Client(f"p5c-sexp-{RUN}", connect_props={"SessionExpiryInterval": 1000})
    expect_eq("CONNACK Session Expiry Interval for 1000 asked", c.connack.get("SessionExpiryInterval"),
              MAX_SESSION_EXPIRY)
    c.stop(SessionExpiryInterval=0)
    c = Client(f"p5c-sexp2-{RUN}", connect_props={"SessionExpiryInterval": 50})
    expect_eq("CONNACK Session Expiry Interval for 50 asked", c.connack.get("SessionExpiryInterval"), None)
    c.stop(SessionExpiryInterval=0)


def check_response_information():
    """Request Response Information 1: CONNACK Response Information is the
    configured prefix followed by the client id."""
    cid = f"p5c-ri-{RUN}"
    c = Client(cid, connect_props={"RequestResponseInformation": 1})
    expect_eq("CONNACK Response Information", c.connack.get("ResponseInformation"), RESPONSE_INFORMATION + cid)
    c.stop()
    c = Client(f"p5c-ri0-{RUN}", connect_props={"RequestResponseInformation": 0})
    expect_eq("CONNACK Response Information with Request Response Information 0",
              c.connack.get("ResponseInformation"), None)
    c.stop()


def check_server_keep_alive_cap():
    """Keepalive 0 or above max_keepalive: accepted, CONNACK Server Keep Alive."""
    for ka in (0, MAX_KEEPALIVE + 1, 600):
        c = Client(f"p5c-ka{ka}-{RUN}", keepalive=ka)
        expect_eq(f"CONNACK Server Keep Alive for keepalive {ka}", c.connack.get("ServerKeepAlive"), MAX_KEEPALIVE)
        c.stop()
    c = Client(f"p5c-ka30-{RUN}", keepalive=30)
    expect_eq("CONNACK Server Keep Alive for keepalive 30", c.connack.get("ServerKeepAlive"), None)
    c.stop()


def check_suback_features_off():
    """SUBACK: granted QoS capped at max_qos; 0xA2 wildcard, 0x9E shared,
    0xA1 subscription identifiers when turned off."""
    c = Client(f"p5c-suback-{RUN}")
    codes = c.sub([(f"cfg/{RUN}/q2", SubscribeOptions(qos=2)), (f"cfg/{RUN}/#", SubscribeOptions(qos=1)),
                   (f"cfg/{RUN}/+/x", SubscribeOptions(qos=0)), (f"$share/g/cfg/{RUN}/s", SubscribeOptions(qos=1))])
    expect_eq("SUBACK [QoS 2 asked, '#', '+', $share]", [hex(x) for x in codes], ["0x1", "0xa2", "0xa2", "0x9e"])
    # A subscription identifier when they are turned off: SUBACK 0xA1
    # (docs/mqtt5.md); MQTT 5 also allows DISCONNECT 0xA1.
    rc, mid = c.c.subscribe(f"cfg/{RUN}/sid", options=SubscribeOptions(qos=1),
                            properties=make_props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=3))
    try:
        codes = c._wait_ack(c.subacks, mid, "SUBACK for a subscription with an identifier")[0]
    except CheckFailed:
        dis = c.gone()
        if "0xA1" not in dis:
            raise
    else:
        expect_eq("SUBACK for a subscription identifier (turned off)", [hex(x) for x in codes], ["0xa1"])
    c.stop()


def check_publish_limits_enforced():
    """QoS 2 above max_qos: DISCONNECT 0x9B; RETAIN when retain is not
    available: DISCONNECT 0x9A; a topic alias above the maximum: 0x94."""
    sub = Client(f"p5c-lim-sub-{RUN}")
    sub.sub_ok(f"lim/{RUN}/t", 1)
    for what, kw, code in (("QoS 2", {"qos": 2}, 0x9B), ("RETAIN", {"qos": 1, "retain": True}, 0x9A),
                           (f"topic alias {TOPIC_ALIAS_MAXIMUM + 1}",
                            {"qos": 1, "properties": make_props(PacketTypes.PUBLISH,
                                                                TopicAlias=TOPIC_ALIAS_MAXIMUM + 1)}, 0x94)):
        c = Client(f"p5c-lim-{code:x}-{RUN}")
        c.c.publish(f"lim/{RUN}/t", b"refused", **kw)
        rc, _ = c.next_disconnect(f"DISCONNECT for a PUBLISH with {what}")
        expect_eq(f"DISCONNECT reason code for a PUBLISH with {what}", hex(rc), hex(code))
        c.c.loop_stop()
    ok = Client(f"p5c-lim-ok-{RUN}")
    ok.pub(f"lim/{RUN}/t", b"allowed", qos=1, TopicAlias=TOPIC_ALIAS_MAXIMUM)
    expect_payload(sub, "the allowed message (no refused one before it)", b"allowed")
    ok.stop()
    sub.stop()


def check_will_limits_refused():
    """A will that breaks retain_available / max_qos: CONNACK 0x9A / 0x9B."""
    Client(f"p5c-wr-{RUN}", will=(f"wl/{RUN}", b"w", 1, True, None), expect_rc=0x9A).c.loop_stop()
    Client(f"p5c-wq-{RUN}", will=(f"wl/{RUN}", b"w", 2, False, None), expect_rc=0x9B).c.loop_stop()


def check_qos1_beyond_receive_maximum():
    """Receive Maximum counts QoS 2 only: a burst of more QoS 1 PUBLISHes than
    it (raw socket, no waiting) is acknowledged, no DISCONNECT."""
    s = raw_connect(f"p5c-rm1-{RUN}")
    n = RECEIVE_MAXIMUM + 4
    s.sendall(b"".join(raw_publish(f"rm/{RUN}", pid, 1) for pid in range(1, n + 1)))
    got = raw_read(s, lambda ps: len(ps) >= n or any(t == 0xE0 for t, _ in ps))
    types = [t for t, _ in got]
    if types != [0x40] * n:
        fail(f"{n} QoS 1 PUBLISHes in a burst: got packet types {[hex(t) for t in types]}, expected {n} PUBACKs")
    s.close()


CHECKS = [
    check_connack_from_config,
    check_session_expiry_cap,
    check_response_information,
    check_server_keep_alive_cap,
    check_suback_features_off,
    check_publish_limits_enforced,
    check_will_limits_refused,
    check_qos1_beyond_receive_maximum,
]

if __name__ == "__main__":
    if sys.argv[1:] == ["--flags"]:
        print(FLAGS)
        sys.exit(0)
    main(CHECKS, "paho-mqtt MQTT 5, configured broker")
