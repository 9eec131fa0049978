#!/usr/bin/env python3
"""MQTT 5 timing checks with paho-mqtt 2.x (run by run_clients.sh): a queued
message is forwarded with its remaining Message Expiry (never more), is never
delivered after it expired, and a will with a Will Delay Interval is never
published early. These caught the broker computing those times from a core's
coarse clock, up to a tick old (fixed: connect and disconnect read the real
time). All pass against mosquitto 2.0 too except message_expiry_not_late
(reference_mosquitto.sh): mosquitto counts expiry in whole seconds.
Usage: paho_v5_timing_check.py PORT [CHECK ...] [-CHECK ...]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paho_v5_check import RUN, TIMEOUT, Client, expect_payload, fail, main  # noqa: E402


def check_message_expiry_queued_remaining():
    """A queued message is forwarded with the remaining lifetime: the interval
    less the seconds it waited."""
    topic = f"expr/{RUN}"
    pub = Client(f"p5-expr-pub-{RUN}")
    cid = f"p5-expr-q-{RUN}"
    for wait in (1.3, 2.6, 1.8, 3.1):
        c = Client(cid, connect_props={"SessionExpiryInterval": 60})
        c.sub_ok(topic, 1)
        c.stop()
        pub.pub(topic, b"queued", qos=1, MessageExpiryInterval=30)
        t0 = time.monotonic()
        time.sleep(wait)
        c = Client(cid, clean_start=False, connect_props={"SessionExpiryInterval": 0})
        m = expect_payload(c, f"message queued {wait} s", b"queued")
        waited = time.monotonic() - t0
        mei = m.props.get("MessageExpiryInterval")
        hi = 30 - int(waited)
        if mei is None or not hi - 1 <= mei <= hi:
            fail(f"message queued {waited:.1f} s: Message Expiry Interval {mei}, expected {hi - 1}..{hi} "
                 f"(30 less the seconds it waited)")
        c.stop()
    pub.stop()


def check_will_delay_not_early():
    """A will with Will Delay Interval 2 is not published before 2 s have
    passed since the connection was lost."""
    watch = Client(f"p5-wne-watch-{RUN}")
    watch.sub_ok(f"wne/{RUN}/#", 1)
    for i in range(8):
        w = Client(f"p5-wne-{i}-{RUN}", connect_props={"SessionExpiryInterval": 60},
                   will=(f"wne/{RUN}/{i}", b"gone", 1, False, {"WillDelayInterval": 2}))
        time.sleep(0.37 * i % 1)  # lose the connection at different points of the broker's second
        t0 = time.monotonic()
        w.kill()
        m = watch.next(f"will {i}", timeout=TIMEOUT + 2)
        waited = time.monotonic() - t0
        if (m.topic, m.payload) != (f"wne/{RUN}/{i}", b"gone"):
            fail(f"will {i}: got {m}")
        if waited < 1.95:
            fail(f"will {i} with Will Delay Interval 2 published {waited:.2f} s after the connection was lost")
    watch.stop()


def check_message_expiry_not_late():
    """A queued message is never delivered after its Message Expiry Interval
    ran out, when the session resumes 1.25..1.95 s after a 1 s message."""
    pub = Client(f"p5-late-pub-{RUN}")
    for i in range(8):
        cid = f"p5-late-{i}-{RUN}"
        topic = f"late/{RUN}/{i}"
        c = Client(cid, connect_props={"SessionExpiryInterval": 60})
        c.sub_ok(topic, 1)
        c.stop()
        pub.pub(topic, b"expires", qos=1, MessageExpiryInterval=1)
        t0 = time.monotonic()
        pub.pub(topic, b"marker", qos=1)
        time.sleep(1.25 + 0.1 * i)
        c = Client(cid, clean_start=False, connect_props={"SessionExpiryInterval": 0})
        m = c.next("first queued message")
        if m.payload != b"marker":
            fail(f"message with Message Expiry Interval 1 delivered {time.monotonic() - t0:.2f} s after it was "
                 f"published: {m}")
        c.stop()
    pub.stop()


PENDING = [
    check_message_expiry_queued_remaining,
    check_will_delay_not_early,
    check_message_expiry_not_late,
]

if __name__ == "__main__":
    main(PENDING, "paho-mqtt MQTT 5, timing")
