#!/usr/bin/env python3
"""Interop check with paho-mqtt 2.x (Python), MQTT 3.1.1, against a running
ringmq: QoS 0/1/2 round trips, retained messages, a will published on an
abrupt close, and a persistent session receiving QoS 1 messages queued while
it was offline. Exits 1 on the first failure. Usage: paho_check.py PORT
"""
import queue
import socket
import sys
import time
import uuid

import paho.mqtt.client as mqtt

HOST = "127.0.0.1"
PORT = int(sys.argv[1])
TIMEOUT = 5.0
RUN = uuid.uuid4().hex[:8]


def fail(msg):
    print(f"FAIL (paho): {msg}", file=sys.stderr)
    sys.exit(1)


def client(cid, clean=True, will=None):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean,
                    protocol=mqtt.MQTTv311)
    inbox = queue.Queue()
    connected = queue.Queue()
    c.on_message = lambda _c, _u, m: inbox.put((m.topic, m.payload, m.qos, m.retain))
    c.on_connect = lambda _c, _u, flags, rc, _p: connected.put((flags.session_present, rc))
    if will:
        c.will_set(*will)
    c.connect(HOST, PORT, keepalive=30)
    c.loop_start()
    try:
        present, rc = connected.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"{cid}: no CONNACK")
    if rc != 0:
        fail(f"{cid}: CONNACK {rc}")
    return c, inbox, present


def expect(inbox, what):
    try:
        return inbox.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"timed out waiting for {what}")


def subscribe(c, topic, qos):
    done = queue.Queue()
    c.on_subscribe = lambda *_a: done.put(True)
    c.subscribe(topic, qos)
    try:
        done.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"no SUBACK for {topic}")


def stop(c):
    c.disconnect()
    c.loop_stop()


# 1. QoS 0/1/2 round trips.
sub, inbox, _ = client(f"paho-sub-{RUN}")
subscribe(sub, f"interop/{RUN}/#", 2)
pub, _, _ = client(f"paho-pub-{RUN}")
for qos in (0, 1, 2):
    pub.publish(f"interop/{RUN}/q{qos}", f"hello-{qos}".encode(), qos=qos).wait_for_publish(TIMEOUT)
    topic, payload, got_qos, _ = expect(inbox, f"QoS {qos} message")
    if (topic, payload, got_qos) != (f"interop/{RUN}/q{qos}", f"hello-{qos}".encode(), qos):
        fail(f"QoS {qos}: got {(topic, payload, got_qos)}")

# 2. Retained message, delivered to a later subscriber with retain set.
pub.publish(f"retained/{RUN}", b"kept", qos=1, retain=True).wait_for_publish(TIMEOUT)
late, late_inbox, _ = client(f"paho-late-{RUN}")
subscribe(late, f"retained/{RUN}", 1)
topic, payload, _, retain = expect(late_inbox, "retained message")
if (payload, retain) != (b"kept", True):
    fail(f"retained: got {(payload, retain)}")
pub.publish(f"retained/{RUN}", b"", qos=1, retain=True).wait_for_publish(TIMEOUT)
stop(late)

# 3. Will on an abrupt close (no DISCONNECT).
dying, _, _ = client(f"paho-dying-{RUN}", will=(f"interop/{RUN}/will", b"gone", 1, False))
time.sleep(0.2)
dying.loop_stop()
dying.socket().shutdown(socket.SHUT_RDWR)
topic, payload, _, _ = expect(inbox, "will message")
if (topic, payload) != (f"interop/{RUN}/will", b"gone"):
    fail(f"will: got {(topic, payload)}")
stop(sub)

# 4. Persistent session: QoS 1 queued while offline.
cid = f"paho-offline-{RUN}"
off, _, _ = client(cid, clean=False)
subscribe(off, f"user/{RUN}", 1)
stop(off)
time.sleep(0.2)
for i in range(3):
    pub.publish(f"user/{RUN}", f"queued-{i}".encode(), qos=1).wait_for_publish(TIMEOUT)
back, back_inbox, present = client(cid, clean=False)
if not present:
    fail("persistent session: session present was 0")
got = [expect(back_inbox, f"queued message {i}")[1] for i in range(3)]
if got != [b"queued-0", b"queued-1", b"queued-2"]:
    fail(f"persistent session: got {got}")
stop(back)
stop(pub)
print("ok: paho-mqtt (MQTT 3.1.1)")
