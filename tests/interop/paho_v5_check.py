#!/usr/bin/env python3
"""Interop check with paho-mqtt 2.x (Python), MQTT 5, against a running ringmq,
following docs/mqtt5.md. Each check is a function; they run in order and the
script exits 1 on the first failure, naming the check and what was wrong.

Usage: paho_v5_check.py PORT [CHECK ...] [-CHECK ...]
  With CHECK names, only those checks run (see CHECKS at the end); -CHECK
  skips one. paho_v5_check.py --names lists the checks.
  RECEIVE_MAXIMUM / TOPIC_ALIAS_MAXIMUM / MAX_KEEPALIVE in the environment give
  the values the broker was started with (defaults: ringmq's 1024 / 1024, and
  MAX_KEEPALIVE unset = no Server Keep Alive check).
"""
import os
import queue
import socket
import sys
import threading
import time
import traceback
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

HOST = "127.0.0.1"
PORT = int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 1883
TIMEOUT = 5.0
RUN = uuid.uuid4().hex[:8]
RECEIVE_MAXIMUM = int(os.environ.get("RECEIVE_MAXIMUM", "1024"))
TOPIC_ALIAS_MAXIMUM = int(os.environ.get("TOPIC_ALIAS_MAXIMUM", "1024"))
MAX_KEEPALIVE = int(os.environ["MAX_KEEPALIVE"]) if os.environ.get("MAX_KEEPALIVE") else None

CURRENT = ["setup"]


class CheckFailed(Exception):
    pass


def fail(msg):
    raise CheckFailed(msg)


def props_of(p):
    """The properties that are set, as a dict keyed by paho's names
    (UserProperty, ContentType, SubscriptionIdentifier, ...)."""
    if p is None:
        return {}
    out = {}
    for name in p.names:
        key = name.replace(" ", "")
        if hasattr(p, key):
            out[key] = getattr(p, key)
    return out


def make_props(packet_type, **values):
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


class Msg:
    def __init__(self, m):
        self.topic = m.topic
        self.payload = m.payload
        self.qos = m.qos
        self.retain = bool(m.retain)
        self.mid = m.mid
        self.props = props_of(getattr(m, "properties", None))

    def __repr__(self):
        return (f"Msg(topic={self.topic!r}, payload={self.payload!r}, qos={self.qos}, "
                f"retain={self.retain}, props={self.props})")


class Client:
    """A paho client run on its own network thread, with queues for what
    the broker sends it."""

    def __init__(self, cid, *, v5=True, clean_start=True, connect_props=None, will=None,
                 keepalive=30, manual_ack=False, expect_rc=0):
        self.cid = cid
        self.v5 = v5
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kw = {} if v5 else {"clean_session": clean_start}
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=proto,
                             manual_ack=manual_ack, **kw)
        self.inbox = queue.Queue()
        self.connacks = queue.Queue()
        self.disconnects = queue.Queue()
        self.subacks = {}
        self.unsubacks = {}
        self.pubacks = {}
        self.lock = threading.Condition()
        self.c.on_message = lambda _c, _u, m: self.inbox.put(Msg(m))
        self.c.on_connect = lambda _c, _u, flags, rc, p: self.connacks.put(
            (flags.session_present, rc.value if hasattr(rc, "value") else int(rc), props_of(p)))
        self.c.on_disconnect = lambda _c, _u, _f, rc, p: self.disconnects.put(
            (rc.value if hasattr(rc, "value") else int(rc), props_of(p)))
        self.c.on_subscribe = lambda _c, _u, mid, rcs, p: self._ack(self.subacks, mid,
                                                                     ([r.value for r in rcs], props_of(p)))
        self.suback_props = {}
        self.c.on_unsubscribe = lambda _c, _u, mid, rcs, _p: self._ack(self.unsubacks, mid, [r.value for r in rcs])
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self._ack(self.pubacks, mid, rc.value)
        if will:
            topic, payload, qos, retain, wprops = will
            self.c.will_set(topic, payload, qos, retain,
                            properties=make_props(PacketTypes.WILLMESSAGE, **wprops) if wprops else None)
        if v5:
            self.c.connect(HOST, PORT, keepalive=keepalive, clean_start=clean_start,
                           properties=make_props(PacketTypes.CONNECT, **(connect_props or {}))
                           if connect_props else None)
        else:
            self.c.connect(HOST, PORT, keepalive=keepalive)
        self.c.loop_start()
        try:
            self.session_present, self.rc, self.connack = self.connacks.get(timeout=TIMEOUT)
        except queue.Empty:
            self.c.loop_stop()
            fail(f"{cid}: no CONNACK")
        if self.rc != expect_rc:
            self.c.loop_stop()
            fail(f"{cid}: CONNACK reason code 0x{self.rc:02X}, expected 0x{expect_rc:02X}")

    def _ack(self, table, mid, value):
        with self.lock:
            table[mid] = value
            self.lock.notify_all()

    def _wait_ack(self, table, mid, what):
        deadline = time.monotonic() + TIMEOUT
        with self.lock:
            while mid not in table:
                left = deadline - time.monotonic()
                if left <= 0:
                    fail(f"{self.cid}: no {what}{self.gone()}")
                self.lock.wait(left)
            return table.pop(mid)

    def gone(self):
        """' (the broker disconnected it: ...)' when it did, for failure messages."""
        try:
            rc, p = self.disconnects.get_nowait()
        except queue.Empty:
            return ""
        self.disconnects.put((rc, p))
        return f" (the broker disconnected it: reason 0x{rc:02X} {p or ''})"

    def sub(self, topic, qos=1, *, no_local=False, rap=False, rh=0, sid=None):
        """Subscribes one filter (or a list of (filter, SubscribeOptions|qos));
        returns the SUBACK reason codes."""
        props = make_props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=sid) if sid else None
        if isinstance(topic, list):
            rc, mid = self.c.subscribe(topic, properties=props)
        elif self.v5:
            opts = SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=rap, retainHandling=rh)
            rc, mid = self.c.subscribe(topic, options=opts, properties=props)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        if rc != 0:
            fail(f"{self.cid}: subscribe({topic!r}) returned {rc}")
        codes, self.suback_props = self._wait_ack(self.subacks, mid, f"SUBACK for {topic!r}")
        return codes

    def sub_ok(self, topic, qos=1, **kw):
        codes = self.sub(topic, qos, **kw)
        if codes != [qos]:
            fail(f"{self.cid}: SUBACK for {topic!r} was {[hex(c) for c in codes]}, expected [{qos}]")

    def unsub(self, topics):
        rc, mid = self.c.unsubscribe(topics)
        if rc != 0:
            fail(f"{self.cid}: unsubscribe returned {rc}")
        return self._wait_ack(self.unsubacks, mid, f"UNSUBACK for {topics!r}")

    def pub(self, topic, payload, qos=1, retain=False, **props):
        """Publishes; for QoS 1/2 waits for the acknowledgement and returns
        its reason code."""
        p = make_props(PacketTypes.PUBLISH, **props) if props else None
        if self.v5:
            info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=p)
        else:
            info = self.c.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != 0:
            fail(f"{self.cid}: publish to {topic!r} returned {info.rc}")
        if qos == 0:
            return None
        info.wait_for_publish(TIMEOUT)
        if not info.is_published():
            fail(f"{self.cid}: no acknowledgement for QoS {qos} publish to {topic!r}{self.gone()}")
        with self.lock:
            return self.pubacks.pop(info.mid, None)

    def next(self, what, timeout=TIMEOUT):
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            fail(f"{self.cid}: timed out waiting for {what}{self.gone()}")

    def quiet(self, seconds, what):
        """Fails when a message arrives within `seconds`."""
        try:
            m = self.inbox.get(timeout=seconds)
        except queue.Empty:
            return
        fail(f"{self.cid}: {what}, but got {m}")

    def next_disconnect(self, what, timeout=TIMEOUT):
        try:
            return self.disconnects.get(timeout=timeout)
        except queue.Empty:
            fail(f"{self.cid}: timed out waiting for {what}")

    def stop(self, reason=None, **props):
        rcode = ReasonCode(PacketTypes.DISCONNECT, identifier=reason) if reason is not None else None
        p = make_props(PacketTypes.DISCONNECT, **props) if props else None
        if self.v5:
            self.c.disconnect(reasoncode=rcode, properties=p)
        else:
            self.c.disconnect()
        self.c.loop_stop()

    def kill(self):
        """Closes the socket without DISCONNECT (so a will is due)."""
        self.c.loop_stop()
        try:
            self.c.socket().shutdown(socket.SHUT_RDWR)
            self.c.socket().close()
        except OSError:
            pass


def expect_eq(what, got, want):
    if got != want:
        fail(f"{what}: got {got!r}, expected {want!r}")


def expect_payload(client, what, want):
    m = client.next(what)
    if m.payload != want:
        fail(f"{client.cid}: {what}: got {m}, expected payload {want!r}")
    return m


# Raw MQTT 5 over a socket, for what a client library will not send.

def raw_connect(cid, keepalive=30):
    """A v5 CONNECT (clean start, no properties); returns the socket after a
    successful CONNACK."""
    cidb = cid.encode()
    body = b"\x00\x04MQTT\x05\x02" + keepalive.to_bytes(2, "big") + b"\x00" + len(cidb).to_bytes(2, "big") + cidb
    s = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
    s.sendall(b"\x10" + _varint(len(body)) + body)
    got = raw_read(s, lambda ps: len(ps) >= 1)
    if not got or got[0][0] != 0x20 or got[0][1][1] != 0:
        fail(f"raw CONNECT {cid}: got {got}")
    return s


def _varint(n):
    out = b""
    while True:
        b, n = n % 128, n // 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def raw_publish(topic, packet_id, qos, payload=b"x"):
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + (packet_id.to_bytes(2, "big") if qos else b"") + b"\x00" + payload
    return bytes([0x30 | (qos << 1)]) + _varint(len(body)) + body


def raw_read(s, done, timeout=TIMEOUT):
    """Reads packets [(first byte, body)] until done(packets), the close or
    the timeout."""
    buf, packets = b"", []
    deadline = time.monotonic() + timeout
    while not done(packets):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        buf += chunk
        while True:
            n, mult, i = 0, 1, 1
            while i < len(buf) and buf[i] & 0x80:
                n += (buf[i] & 0x7F) * mult
                mult *= 128
                i += 1
            if i >= len(buf):
                break
            n += buf[i] * mult
            if len(buf) < i + 1 + n:
                break
            packets.append((buf[0], buf[i + 1:i + 1 + n]))
            buf = buf[i + 1 + n:]
    return packets


# --------------------------------------------------------------------------
# Checks


def check_connack_properties():
    """CONNACK of a v5 client carries the broker's limits (docs/mqtt5.md, CONNACK)."""
    c = Client(f"p5-connack-{RUN}", connect_props={"SessionExpiryInterval": 30})
    p = c.connack
    expect_eq("CONNACK Receive Maximum", p.get("ReceiveMaximum"), RECEIVE_MAXIMUM)
    expect_eq("CONNACK Topic Alias Maximum", p.get("TopicAliasMaximum"), TOPIC_ALIAS_MAXIMUM or None)
    expect_eq("CONNACK Maximum QoS (absent when 2)", p.get("MaximumQoS"), None)
    if p.get("RetainAvailable", 1) != 1:
        fail(f"CONNACK Retain Available is {p['RetainAvailable']}, expected 1")
    for key in ("WildcardSubscriptionAvailable", "SubscriptionIdentifierAvailable",
                "SharedSubscriptionAvailable"):
        if p.get(key, 1) != 1:
            fail(f"CONNACK {key} is {p[key]}, expected 1 (or absent)")
    if "MaximumPacketSize" in p and p["MaximumPacketSize"] < 1024:
        fail(f"CONNACK Maximum Packet Size is {p['MaximumPacketSize']}")
    expect_eq("CONNACK Session Expiry Interval (30 is not above the cap)",
              p.get("SessionExpiryInterval"), None)
    expect_eq("CONNACK Assigned Client Identifier (client id was given)",
              p.get("AssignedClientIdentifier"), None)
    c.stop()

    anon = Client("")
    assigned = anon.connack.get("AssignedClientIdentifier")
    if not assigned:
        fail(f"empty client id: CONNACK has no Assigned Client Identifier: {anon.connack}")
    anon.stop()


def check_server_keep_alive():
    """A v5 keepalive above max_keepalive is accepted and answered with Server Keep Alive."""
    if MAX_KEEPALIVE is None:
        return
    c = Client(f"p5-ka-{RUN}", keepalive=min(MAX_KEEPALIVE + 100, 65535))
    expect_eq("CONNACK Server Keep Alive", c.connack.get("ServerKeepAlive"), MAX_KEEPALIVE)
    c.stop()
    c = Client(f"p5-ka2-{RUN}", keepalive=30)
    expect_eq("CONNACK Server Keep Alive for keepalive 30", c.connack.get("ServerKeepAlive"), None)
    c.stop()


PROPS = {
    "PayloadFormatIndicator": 1,
    "ContentType": "text/plain; charset=utf-8",
    "ResponseTopic": f"reply/{RUN}/x",
    "CorrelationData": b"\x00\x01corr\xff",
    "UserProperty": [("k", "v1"), ("z", "first"), ("k", "v2"), ("\u00fcn\u00ef", "\u00e7\u00f8d\u00e9"),
                     ("a", "")],
}


def check_properties_round_trip():
    """Publish properties are forwarded unchanged, user properties in order."""
    sub = Client(f"p5-props-sub-{RUN}")
    sub.sub_ok(f"props/{RUN}/#", 2)
    pub = Client(f"p5-props-pub-{RUN}")
    for qos in (0, 1, 2):
        topic = f"props/{RUN}/q{qos}"
        pub.pub(topic, f"payload-{qos}".encode(), qos=qos, **PROPS)
        m = sub.next(f"QoS {qos} message with properties")
        expect_eq(f"QoS {qos} topic", m.topic, topic)
        expect_eq(f"QoS {qos} payload", m.payload, f"payload-{qos}".encode())
        expect_eq(f"QoS {qos} qos", m.qos, qos)
        for k, v in PROPS.items():
            expect_eq(f"QoS {qos} property {k}", m.props.get(k), v)
        if "MessageExpiryInterval" in m.props:
            fail(f"QoS {qos}: Message Expiry Interval on a message published without one: {m}")
        if "TopicAlias" in m.props:
            fail(f"QoS {qos}: Topic Alias sent to a client that allowed none: {m}")
        if "SubscriptionIdentifier" in m.props:
            fail(f"QoS {qos}: Subscription Identifier on a subscription without one: {m}")
    # No properties in, no properties out.
    pub.pub(f"props/{RUN}/bare", b"bare", qos=1)
    m = expect_payload(sub, "message without properties", b"bare")
    if m.props:
        fail(f"message published without properties arrived with {m.props}")
    sub.stop()
    pub.stop()


def check_request_response():
    """Request/response through Response Topic and Correlation Data."""
    req_topic = f"svc/{RUN}/upper"
    responder = Client(f"p5-responder-{RUN}")

    def answer(_c, _u, m):
        p = props_of(m.properties)
        out = make_props(PacketTypes.PUBLISH, CorrelationData=p.get("CorrelationData", b""))
        responder.c.publish(p["ResponseTopic"], m.payload.upper(), qos=1, properties=out)

    responder.c.on_message = answer
    responder.sub_ok(req_topic, 1)
    requester = Client(f"p5-requester-{RUN}")
    reply_to = f"svc/{RUN}/replies/{requester.cid}"
    requester.sub_ok(reply_to, 1)
    sent = {}
    for i in range(3):
        corr = f"req-{i}".encode() + bytes([i, 0, 255])
        sent[corr] = f"hello {i}".encode()
        requester.pub(req_topic, sent[corr], qos=1, ResponseTopic=reply_to, CorrelationData=corr)
    for i in range(3):
        m = requester.next(f"response {i}")
        corr = m.props.get("CorrelationData")
        if corr not in sent:
            fail(f"response with unknown correlation data: {m}")
        expect_eq(f"response to {sent[corr]!r}", m.payload, sent.pop(corr).upper())
        expect_eq("response topic", m.topic, reply_to)
    responder.stop()
    requester.stop()


def check_puback_no_subscribers():
    """PUBACK 0x10 for a QoS 1 message that matched no subscription."""
    pub = Client(f"p5-nomatch-{RUN}")
    rc = pub.pub(f"nobody/{RUN}/listens", b"x", qos=1)
    expect_eq("PUBACK reason code with no subscribers", rc, 0x10)
    s = Client(f"p5-nomatch-sub-{RUN}")
    s.sub_ok(f"nobody/{RUN}/now", 1)
    rc = pub.pub(f"nobody/{RUN}/now", b"x", qos=1)
    expect_eq("PUBACK reason code with a subscriber", rc, 0x00)
    s.stop()
    pub.stop()


def check_subscription_identifiers():
    """Subscription Identifiers are delivered; overlapping subscriptions give
    one copy with all identifiers."""
    c = Client(f"p5-sid-{RUN}")
    c.sub_ok(f"sid/{RUN}/#", 1, sid=7)
    c.sub_ok(f"sid/{RUN}/+", 0, sid=300)  # two-byte variable integer
    c.sub_ok(f"sid/{RUN}/x/y", 1)  # no identifier
    pub = Client(f"p5-sid-pub-{RUN}")
    pub.pub(f"sid/{RUN}/a", b"both", qos=1)
    m = expect_payload(c, "message matching #(7) and +(300)", b"both")
    expect_eq("subscription identifiers for #(7) and +(300)", sorted(m.props.get("SubscriptionIdentifier", [])),
              [7, 300])
    expect_eq("QoS of the overlapping copy (highest of 1 and 0)", m.qos, 1)
    pub.pub(f"sid/{RUN}/x/y", b"deep", qos=1)
    m = expect_payload(c, "message matching #(7) and x/y(none)", b"deep")
    expect_eq("subscription identifiers for #(7) and x/y(none)", m.props.get("SubscriptionIdentifier"), [7])
    c.quiet(0.5, "one copy per message expected for overlapping subscriptions")
    # Re-subscribing with another identifier replaces it.
    c.sub_ok(f"sid/{RUN}/#", 1, sid=8)
    pub.pub(f"sid/{RUN}/x/y", b"again", qos=1)
    m = expect_payload(c, "message after re-subscribing # with identifier 8", b"again")
    expect_eq("identifier after re-subscribe", m.props.get("SubscriptionIdentifier"), [8])
    c.stop()
    pub.stop()


def check_no_local():
    """No Local: the subscriber does not get its own messages."""
    topic = f"nolocal/{RUN}"
    a = Client(f"p5-nl-a-{RUN}")
    a.sub_ok(topic, 1, no_local=True)
    b = Client(f"p5-nl-b-{RUN}")
    b.sub_ok(topic, 1)
    a.pub(topic, b"from-a", qos=1)
    expect_payload(b, "A's message at B", b"from-a")
    b.pub(topic, b"from-b", qos=1)
    expect_payload(a, "B's message at A (A's own must not come first)", b"from-b")
    a.quiet(0.3, "No Local subscriber must not get its own message")
    expect_payload(b, "B's own message (B did not ask for No Local)", b"from-b")
    a.stop()
    b.stop()


def check_retain_handling():
    """Retain Handling 0/1/2 and Retain As Published."""
    topic = f"rh/{RUN}/t"
    pub = Client(f"p5-rh-pub-{RUN}")
    pub.pub(topic, b"kept", qos=1, retain=True)
    c = Client(f"p5-rh-{RUN}")

    c.sub_ok(f"rh/{RUN}/+", 1, rh=2)
    pub.pub(topic, b"live-1", qos=1)
    m = expect_payload(c, "live message after a Retain Handling 2 subscribe (no retained)", b"live-1")
    c.unsub([f"rh/{RUN}/+"])

    c.sub_ok(topic, 1, rh=1)
    m = expect_payload(c, "retained message for a new Retain Handling 1 subscription", b"kept")
    expect_eq("RETAIN flag of a retained message sent at subscribe", m.retain, True)
    c.sub_ok(topic, 1, rh=1)
    pub.pub(topic, b"live-2", qos=1)
    expect_payload(c, "live message after re-subscribing with Retain Handling 1 (no retained)", b"live-2")
    c.sub_ok(topic, 1, rh=0)
    expect_payload(c, "retained message after re-subscribing with Retain Handling 0", b"kept")

    # Retain As Published on live messages.
    rap = Client(f"p5-rap-{RUN}")
    rap.sub_ok(f"rap/{RUN}", 1, rap=True)
    plain = Client(f"p5-norap-{RUN}")
    plain.sub_ok(f"rap/{RUN}", 1)
    pub.pub(f"rap/{RUN}", b"r", qos=1, retain=True)
    expect_eq("RETAIN flag with Retain As Published", expect_payload(rap, "retained live message", b"r").retain,
              True)
    expect_eq("RETAIN flag without Retain As Published", expect_payload(plain, "retained live", b"r").retain,
              False)
    for t in (topic, f"rap/{RUN}"):
        pub.pub(t, b"", qos=1, retain=True)
    for x in (c, rap, plain, pub):
        x.stop()


def check_suback_unsuback_codes():
    """SUBACK granted QoS and 0x8F for invalid filters; UNSUBACK 0x00 / 0x11."""
    c = Client(f"p5-suback-{RUN}")
    # paho refuses invalid filters itself; let them through to the broker.
    c.c._filter_wildcard_len_check = lambda _sub: mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
    codes = c.sub([(f"sa/{RUN}/q0", SubscribeOptions(qos=0)), (f"sa/{RUN}/q1", SubscribeOptions(qos=1)),
                   (f"sa/{RUN}/q2", SubscribeOptions(qos=2)), (f"sa/{RUN}/#/bad", SubscribeOptions(qos=1)),
                   (f"sa/{RUN}/a+", SubscribeOptions(qos=0))])
    expect_eq("SUBACK reason codes [q0, q1, q2, 'x/#/bad', 'a+']", [hex(x) for x in codes],
              ["0x0", "0x1", "0x2", "0x8f", "0x8f"])
    codes = c.unsub([f"sa/{RUN}/q1", f"sa/{RUN}/never"])
    expect_eq("UNSUBACK reason codes [subscribed, never subscribed]", [hex(x) for x in codes], ["0x0", "0x11"])
    # The connection is still usable after the refused filters.
    pub = Client(f"p5-suback-pub-{RUN}")
    pub.pub(f"sa/{RUN}/q2", b"still-here", qos=2)
    m = expect_payload(c, "message after refused filters", b"still-here")
    expect_eq("QoS of a message on the QoS 2 subscription", m.qos, 2)
    c.stop()
    pub.stop()


def check_will_delay():
    """Will Delay Interval: no will when the session is resumed in time; the will
    after the delay otherwise (that it is not early: will_delay_not_early in
    paho_v5_timing_check.py); at session end when that comes first;
    DISCONNECT 0x04 sends it, 0x00 discards it."""
    watch = Client(f"p5-will-watch-{RUN}")
    watch.sub_ok(f"will/{RUN}/#", 1)
    wprops = {"WillDelayInterval": 2, "ContentType": "text/x-will", "UserProperty": [("who", "a")]}

    # a. Reconnect before the delay is over: no will.
    cid = f"p5-will-a-{RUN}"
    w = Client(cid, connect_props={"SessionExpiryInterval": 60},
               will=(f"will/{RUN}/a", b"a-gone", 1, False, wprops))
    w.kill()
    time.sleep(0.3)
    w2 = Client(cid, clean_start=False, connect_props={"SessionExpiryInterval": 60})
    watch.quiet(3.0, "will sent although the client reconnected within the Will Delay Interval")
    w2.stop(SessionExpiryInterval=0)

    # b. No reconnect: the will comes after the delay, with its properties.
    w = Client(f"p5-will-b-{RUN}", connect_props={"SessionExpiryInterval": 60},
               will=(f"will/{RUN}/b", b"b-gone", 1, False, wprops))
    w.kill()
    m = watch.next("delayed will", timeout=TIMEOUT + 2)
    expect_eq("delayed will payload", (m.topic, m.payload), (f"will/{RUN}/b", b"b-gone"))
    expect_eq("will Content Type", m.props.get("ContentType"), "text/x-will")
    expect_eq("will User Property", m.props.get("UserProperty"), [("who", "a")])

    # c. Session expiry (1 s) shorter than the will delay (30 s): will at session end.
    w = Client(f"p5-will-c-{RUN}", connect_props={"SessionExpiryInterval": 1},
               will=(f"will/{RUN}/c", b"c-gone", 1, False, {"WillDelayInterval": 30}))
    w.kill()
    m = watch.next("will at session expiry (1 s, before the 30 s will delay)", timeout=TIMEOUT + 2)
    expect_eq("will at session end", (m.topic, m.payload), (f"will/{RUN}/c", b"c-gone"))

    # d. DISCONNECT 0x04 publishes the will (no delay set), 0x00 discards it.
    w = Client(f"p5-will-d-{RUN}", will=(f"will/{RUN}/d", b"d-gone", 1, False, None))
    w.stop(reason=0x04)
    m = watch.next("will after DISCONNECT 0x04")
    expect_eq("will after DISCONNECT 0x04", (m.topic, m.payload), (f"will/{RUN}/d", b"d-gone"))
    w = Client(f"p5-will-e-{RUN}", will=(f"will/{RUN}/e", b"e-gone", 1, False, None))
    w.stop(reason=0x00)
    watch.quiet(1.0, "will sent after DISCONNECT 0x00")
    watch.stop()


def check_session_expiry():
    """Session Expiry Interval: queued QoS 1 messages after reconnect; the
    session is gone after its expiry; 0 ends it at disconnect; DISCONNECT can
    set it to 0."""
    topic = f"sess/{RUN}"
    pub = Client(f"p5-sess-pub-{RUN}")

    cid = f"p5-sess-a-{RUN}"
    c = Client(cid, connect_props={"SessionExpiryInterval": 60})
    expect_eq("Session Present on a Clean Start connect", c.session_present, False)
    c.sub_ok(topic, 1)
    c.stop()
    time.sleep(0.2)
    for i in range(3):
        pub.pub(topic, f"queued-{i}".encode(), qos=1, UserProperty=[("i", str(i))])
    c = Client(cid, clean_start=False, connect_props={"SessionExpiryInterval": 60})
    expect_eq("Session Present after reconnect within expiry", c.session_present, True)
    for i in range(3):
        m = expect_payload(c, f"queued message {i}", f"queued-{i}".encode())
        expect_eq(f"queued message {i} QoS", m.qos, 1)
        expect_eq(f"queued message {i} user property", m.props.get("UserProperty"), [("i", str(i))])
    # DISCONNECT with Session Expiry Interval 0 ends the session now.
    c.stop(SessionExpiryInterval=0)
    time.sleep(0.2)
    c = Client(cid, clean_start=False)
    expect_eq("Session Present after DISCONNECT set Session Expiry 0", c.session_present, False)
    c.stop()

    # Expiry of 1 s: the session, its subscription and queue are gone after 2.5 s.
    cid = f"p5-sess-b-{RUN}"
    c = Client(cid, connect_props={"SessionExpiryInterval": 1})
    c.sub_ok(topic, 1)
    c.stop()
    pub.pub(topic, b"to-expired", qos=1)
    time.sleep(2.5)
    c = Client(cid, clean_start=False, connect_props={"SessionExpiryInterval": 60})
    expect_eq("Session Present after the session expired", c.session_present, False)
    c.quiet(0.5, "message delivered from an expired session")
    c.stop(SessionExpiryInterval=0)

    # Expiry 0 (absent): the session ends with the connection.
    cid = f"p5-sess-c-{RUN}"
    c = Client(cid)
    c.sub_ok(topic, 1)
    c.stop()
    time.sleep(0.2)
    c = Client(cid, clean_start=False)
    expect_eq("Session Present when the previous connection had Session Expiry 0", c.session_present, False)
    c.stop()

    # Clean Start 1 discards an existing session.
    cid = f"p5-sess-d-{RUN}"
    c = Client(cid, connect_props={"SessionExpiryInterval": 60})
    c.sub_ok(topic, 1)
    c.stop()
    c = Client(cid, clean_start=True, connect_props={"SessionExpiryInterval": 60})
    expect_eq("Session Present with Clean Start 1", c.session_present, False)
    pub.pub(topic, b"after-clean-start", qos=1)
    c.quiet(0.5, "message delivered for a subscription that Clean Start discarded")
    c.stop(SessionExpiryInterval=0)
    pub.stop()


def check_session_takeover():
    """A second connection with the same client id: the first gets DISCONNECT 0x8E."""
    cid = f"p5-takeover-{RUN}"
    first = Client(cid)
    second = Client(cid)
    rc, _ = first.next_disconnect("DISCONNECT on session takeover")
    expect_eq("DISCONNECT reason code on takeover", hex(rc), hex(0x8E))
    first.c.loop_stop()
    second.stop()


def check_message_expiry_dropped():
    """Message Expiry Interval: expired queued messages are dropped, for v5
    and 3.1.1 sessions; retained messages expire."""
    topic = f"exp/{RUN}"
    pub = Client(f"p5-exp-pub-{RUN}")
    cid5 = f"p5-exp-v5-{RUN}"
    cid3 = f"p5-exp-v3-{RUN}"
    v5 = Client(cid5, connect_props={"SessionExpiryInterval": 60})
    v5.sub_ok(topic, 1)
    v5.stop()
    v3 = Client(cid3, v5=False, clean_start=False)
    v3.sub_ok(topic, 1)
    v3.stop()
    time.sleep(0.2)
    pub.pub(topic, b"short", qos=1, MessageExpiryInterval=1)
    pub.pub(topic, b"long", qos=1, MessageExpiryInterval=30)
    pub.pub(topic, b"forever", qos=1)
    time.sleep(2.5)
    v5 = Client(cid5, clean_start=False, connect_props={"SessionExpiryInterval": 60})
    m = expect_payload(v5, "first queued message still alive (the 1 s one expired)", b"long")
    if m.props.get("MessageExpiryInterval") is None:
        fail(f"queued message lost its Message Expiry Interval: {m}")
    m = expect_payload(v5, "queued message without expiry", b"forever")
    expect_eq("Message Expiry Interval of a message sent without one", m.props.get("MessageExpiryInterval"), None)
    v5.quiet(0.3, "expired message delivered")
    v5.stop(SessionExpiryInterval=0)
    v3 = Client(cid3, v5=False, clean_start=False)
    expect_payload(v3, "3.1.1 session: first queued message still alive", b"long")
    expect_payload(v3, "3.1.1 session: queued message without expiry", b"forever")
    v3.quiet(0.3, "expired message delivered to a 3.1.1 session")
    v3.stop()
    Client(cid3, v5=False, clean_start=True).stop()

    # A retained message expires too.
    rtopic = f"exp/{RUN}/retained"
    pub.pub(rtopic, b"retained-short", qos=1, retain=True, MessageExpiryInterval=1)
    time.sleep(2.5)
    late = Client(f"p5-exp-late-{RUN}")
    late.sub_ok(rtopic, 1)
    pub.pub(rtopic, b"marker", qos=1)
    expect_payload(late, "marker after subscribing to an expired retained message", b"marker")
    pub.pub(rtopic, b"", qos=1, retain=True)
    late.stop()
    pub.stop()


def check_message_expiry_live():
    """A message delivered at once carries its Message Expiry Interval, never
    more than was published (cores' clocks differ by up to a tick)."""
    topic = f"expl/{RUN}"
    sub = Client(f"p5-expl-{RUN}")
    sub.sub_ok(topic, 1)
    pub = Client(f"p5-expl-pub-{RUN}")
    for qos in (0, 1, 2):
        for i in range(3):
            pub.pub(topic, b"live", qos=qos, MessageExpiryInterval=120)
            m = expect_payload(sub, f"live QoS {qos} message with Message Expiry Interval 120", b"live")
            mei = m.props.get("MessageExpiryInterval")
            if mei is None or not 119 <= mei <= 120:
                fail(f"live QoS {qos} message (try {i}): Message Expiry Interval {mei}, expected 119..120 "
                     f"(published with 120, delivered at once)")
            time.sleep(0.25)
    sub.stop()
    pub.stop()


def check_problem_information():
    """A failed SUBACK carries a Reason String, unless the client set Request
    Problem Information 0."""
    for rpi, want in ((None, True), (1, True), (0, False)):
        props = {"RequestProblemInformation": rpi} if rpi is not None else None
        c = Client(f"p5-rpi-{rpi}-{RUN}", connect_props=props)
        c.c._filter_wildcard_len_check = lambda _sub: mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        codes = c.sub(f"rpi/{RUN}/#/bad", 1)
        expect_eq(f"SUBACK for an invalid filter (Request Problem Information {rpi})", codes, [0x8F])
        has = "ReasonString" in c.suback_props
        if has != want:
            fail(f"Request Problem Information {rpi}: failed SUBACK properties {c.suback_props}, "
                 f"expected {'a' if want else 'no'} Reason String")
        ok = c.sub(f"rpi/{RUN}/fine", 1)
        expect_eq("SUBACK for a valid filter", ok, [1])
        c.stop()


def check_shared_subscription():
    """$share/{group}/{filter}: each message goes to one member of the group;
    a plain subscriber still gets every message; no retained messages."""
    topic = f"shr/{RUN}/t"
    pub = Client(f"p5-shr-pub-{RUN}")
    pub.pub(topic, b"retained", qos=1, retain=True)
    members = [Client(f"p5-shr-{i}-{RUN}") for i in range(2)]
    for m in members:
        m.sub_ok(f"$share/grp/shr/{RUN}/+", 1)
    plain = Client(f"p5-shr-plain-{RUN}")
    plain.sub_ok(topic, 1, rh=2)
    n = 20
    for i in range(n):
        pub.pub(topic, f"m{i}".encode(), qos=1)
    got = [plain.next(f"message {i} at the plain subscriber").payload for i in range(n)]
    expect_eq("messages at the plain subscriber", got, [f"m{i}".encode() for i in range(n)])
    time.sleep(0.5)
    shared = []
    for m in members:
        while not m.inbox.empty():
            shared.append((m.cid, m.inbox.get()))
    if any(x.payload == b"retained" for _, x in shared):
        fail("a retained message was sent to a shared subscription")
    payloads = sorted(x.payload for _, x in shared)
    want = sorted(f"m{i}".encode() for i in range(n))
    if payloads != want:
        fail(f"shared group got {len(payloads)} messages for {n} published (each exactly once expected): "
             f"{[(cid, x.payload) for cid, x in shared]}")
    # No Local on a shared subscription is a protocol error.
    bad = Client(f"p5-shr-nl-{RUN}")
    bad.c.subscribe(f"$share/grp/shr/{RUN}/nl", options=SubscribeOptions(qos=1, noLocal=True))
    rc, _ = bad.next_disconnect("DISCONNECT for No Local on a shared subscription")
    expect_eq("DISCONNECT reason code for No Local on a shared subscription", hex(rc), hex(0x82))
    bad.c.loop_stop()
    pub.pub(topic, b"", qos=1, retain=True)
    for x in members + [plain, pub]:
        x.stop()


def check_keep_alive_timeout():
    """A v5 client silent for 1.5 x its keepalive gets DISCONNECT 0x8D."""
    c = Client(f"p5-ka-timeout-{RUN}", keepalive=1)
    t0 = time.monotonic()
    c.c.loop_stop()  # no more PINGREQ (this can take paho up to 1 s)
    sock = c.c.socket()
    sock.setblocking(True)
    sock.settimeout(4.0)
    data = b""
    while True:
        try:
            chunk = sock.recv(64)
        except socket.timeout:
            fail(f"keepalive 1 s: no DISCONNECT (nor close) within 4 s of silence (got {data.hex()})")
        data += chunk
        while data.startswith(b"\xd0\x00"):  # PINGRESP to a PINGREQ paho sent before it stopped
            data = data[2:]
            t0 = time.monotonic()
        if data or not chunk:
            break
    waited = time.monotonic() - t0
    if not data:
        fail(f"keepalive 1 s: connection closed after {waited:.1f} s without DISCONNECT 0x8D")
    if data[0] != 0xE0 or len(data) < 3 or data[2] != 0x8D:
        fail(f"keepalive 1 s: got {data.hex()} after {waited:.1f} s, expected DISCONNECT 0x8D (e0 .. 8d)")
    if waited < 1.0:
        fail(f"keepalive 1 s: DISCONNECT 0x8D after {waited:.2f} s of silence (1.5 s allowed)")
    sock.close()


def check_receive_maximum_enforced():
    """More QoS 2 PUBLISHes awaiting PUBREL than the broker's Receive Maximum:
    DISCONNECT 0x93 (raw socket: paho would send the PUBRELs)."""
    s = raw_connect(f"p5-rmax-{RUN}")
    n = RECEIVE_MAXIMUM + 1
    s.sendall(b"".join(raw_publish(f"rmax/{RUN}", pid, 2) for pid in range(1, n + 1)))
    got = raw_read(s, lambda ps: any(t == 0xE0 for t, _ in ps), timeout=TIMEOUT + 5)
    types = [t for t, _ in got]
    pubrecs = types.count(0x50)
    disconnect = [b for t, b in got if t == 0xE0]
    if not disconnect:
        fail(f"{n} QoS 2 PUBLISHes without PUBREL (Receive Maximum {RECEIVE_MAXIMUM}): no DISCONNECT "
             f"({pubrecs} PUBRECs, packet types {sorted(set(hex(t) for t in types))})")
    expect_eq(f"DISCONNECT reason code after {n} QoS 2 PUBLISHes awaiting PUBREL", hex(disconnect[0][0]), hex(0x93))
    if pubrecs > RECEIVE_MAXIMUM:
        fail(f"{pubrecs} PUBRECs before DISCONNECT 0x93, at most {RECEIVE_MAXIMUM} expected")
    s.close()


def check_topic_alias_from_client():
    """A client may publish with a Topic Alias, then with the alias alone."""
    sub = Client(f"p5-ta-sub-{RUN}")
    sub.sub_ok(f"alias/{RUN}/#", 1)
    pub = Client(f"p5-ta-pub-{RUN}")
    pub.pub(f"alias/{RUN}/one", b"first", qos=1, TopicAlias=1)
    pub.pub("", b"second", qos=1, TopicAlias=1)
    pub.pub(f"alias/{RUN}/two", b"third", qos=1, TopicAlias=1)  # re-map alias 1
    pub.pub("", b"fourth", qos=1, TopicAlias=1)
    for payload, topic in ((b"first", "one"), (b"second", "one"), (b"third", "two"), (b"fourth", "two")):
        m = expect_payload(sub, f"message {payload!r} sent with a topic alias", payload)
        expect_eq(f"topic of {payload!r}", m.topic, f"alias/{RUN}/{topic}")
        if "TopicAlias" in m.props:
            fail(f"subscriber that allowed no aliases got one: {m}")
    pub.stop()
    # An alias above the broker's maximum: DISCONNECT 0x94.
    bad = Client(f"p5-ta-bad-{RUN}")
    bad.c.publish(f"alias/{RUN}/bad", b"x", qos=0,
                  properties=make_props(PacketTypes.PUBLISH, TopicAlias=min(TOPIC_ALIAS_MAXIMUM + 1, 65535)))
    rc, _ = bad.next_disconnect("DISCONNECT for a topic alias above the maximum")
    expect_eq("DISCONNECT reason code for a topic alias above the maximum", hex(rc), hex(0x94))
    bad.c.loop_stop()
    sub.quiet(0.3, "message with an invalid topic alias was delivered")
    sub.stop()


def check_receive_maximum_of_client():
    """The client's Receive Maximum caps unacknowledged QoS 1 sends."""
    topic = f"rm/{RUN}"
    c = Client(f"p5-rm-{RUN}", connect_props={"ReceiveMaximum": 2}, manual_ack=True)
    c.sub_ok(topic, 1)
    pub = Client(f"p5-rm-pub-{RUN}")
    for i in range(5):
        pub.pub(topic, f"m{i}".encode(), qos=1)
    got = [c.next(f"message {i} within Receive Maximum 2") for i in range(2)]
    c.quiet(0.7, "more than Receive Maximum (2) unacknowledged QoS 1 messages sent")
    for m in got:
        c.c.ack(m.mid, 1)
    got += [c.next(f"message {i} after acknowledging") for i in range(2, 4)]
    c.quiet(0.5, "more than Receive Maximum (2) unacknowledged QoS 1 messages sent after acks")
    for m in got[2:]:
        c.c.ack(m.mid, 1)
    got.append(c.next("message 4 after acknowledging"))
    c.c.ack(got[-1].mid, 1)
    expect_eq("payloads under Receive Maximum 2", [m.payload for m in got], [f"m{i}".encode() for i in range(5)])
    c.stop()
    pub.stop()


def check_maximum_packet_size_of_client():
    """A message larger than the client's Maximum Packet Size is not sent to it."""
    topic = f"mps/{RUN}"
    c = Client(f"p5-mps-{RUN}", connect_props={"MaximumPacketSize": 256})
    c.sub_ok(topic, 1)
    big = Client(f"p5-mps-big-{RUN}")
    big.sub_ok(topic, 1)
    pub = Client(f"p5-mps-pub-{RUN}")
    pub.pub(topic, b"x" * 1000, qos=1)
    pub.pub(topic, b"small", qos=1)
    expect_payload(c, "small message (the 1000-byte one exceeds Maximum Packet Size 256)", b"small")
    expect_payload(big, "1000-byte message for a client without a limit", b"x" * 1000)
    expect_payload(big, "small message for a client without a limit", b"small")
    for x in (c, big, pub):
        x.stop()


def check_enhanced_auth_refused():
    """An Authentication Method gets CONNACK 0x8C."""
    c = Client(f"p5-auth-{RUN}", connect_props={"AuthenticationMethod": "SCRAM-SHA-1"}, expect_rc=0x8C)
    c.c.loop_stop()


def check_mixed_versions():
    """3.1.1 and v5 clients on the same topic, both ways."""
    topic = f"mix/{RUN}"
    v3 = Client(f"p5-mix-v3-{RUN}", v5=False)
    v3.sub_ok(topic, 1)
    v5 = Client(f"p5-mix-v5-{RUN}")
    v5.sub_ok(topic, 1)
    v5.pub(topic, b"from-v5", qos=1, ContentType="text/plain", UserProperty=[("from", "v5")],
           MessageExpiryInterval=60)
    m = expect_payload(v3, "v5 message at the 3.1.1 subscriber", b"from-v5")
    expect_eq("QoS at the 3.1.1 subscriber", m.qos, 1)
    m = expect_payload(v5, "v5 message at the v5 subscriber", b"from-v5")
    expect_eq("user property at the v5 subscriber", m.props.get("UserProperty"), [("from", "v5")])
    v3.pub(topic, b"from-v3", qos=1)
    expect_payload(v3, "3.1.1 message at the 3.1.1 subscriber", b"from-v3")
    m = expect_payload(v5, "3.1.1 message at the v5 subscriber", b"from-v3")
    expect_eq("QoS at the v5 subscriber", m.qos, 1)
    if m.props:
        fail(f"3.1.1 message arrived at the v5 subscriber with properties {m.props}")
    # QoS 2 and retained across versions.
    v5.pub(f"{topic}/r", b"retained-v5", qos=2, retain=True, UserProperty=[("r", "1")])
    late3 = Client(f"p5-mix-late3-{RUN}", v5=False)
    late3.sub_ok(f"{topic}/r", 2)
    m = expect_payload(late3, "v5 retained message at a 3.1.1 subscriber", b"retained-v5")
    expect_eq("retain flag at the 3.1.1 subscriber", m.retain, True)
    late5 = Client(f"p5-mix-late5-{RUN}")
    late5.sub_ok(f"{topic}/r", 2)
    m = expect_payload(late5, "v5 retained message at a v5 subscriber", b"retained-v5")
    expect_eq("user property of a retained message", m.props.get("UserProperty"), [("r", "1")])
    v3.pub(f"{topic}/r", b"", qos=1, retain=True)
    for x in (v3, v5, late3, late5):
        x.stop()


CHECKS = [
    check_connack_properties,
    check_server_keep_alive,
    check_properties_round_trip,
    check_request_response,
    check_puback_no_subscribers,
    check_subscription_identifiers,
    check_no_local,
    check_retain_handling,
    check_suback_unsuback_codes,
    check_session_expiry,
    check_session_takeover,
    check_message_expiry_dropped,
    check_message_expiry_live,
    check_will_delay,
    check_topic_alias_from_client,
    check_receive_maximum_of_client,
    check_receive_maximum_enforced,
    check_maximum_packet_size_of_client,
    check_enhanced_auth_refused,
    check_problem_information,
    check_shared_subscription,
    check_keep_alive_timeout,
    check_mixed_versions,
]


def main(checks, label):
    if sys.argv[1:] == ["--names"]:
        print(" ".join(f.__name__.removeprefix("check_") for f in checks))
        os._exit(0)
    wanted = [a for a in sys.argv[2:] if not a.startswith("-")]
    skipped = [a[1:] for a in sys.argv[2:] if a.startswith("-")]
    names = {f.__name__.removeprefix("check_"): f for f in checks}
    for w in wanted + skipped:
        if w not in names:
            print(f"unknown check {w}; checks: {' '.join(names)}", file=sys.stderr)
            sys.exit(2)
    for name, f in names.items():
        if (wanted and name not in wanted) or name in skipped:
            continue
        t0 = time.monotonic()
        try:
            f()
        except CheckFailed as e:
            print(f"FAIL ({label}) {name}: {e}", file=sys.stderr)
            os._exit(1)
        except Exception:  # a bug in the check, or paho raising: fail loudly too
            traceback.print_exc()
            print(f"FAIL ({label}) {name}: exception above", file=sys.stderr)
            os._exit(1)
        print(f"  ok {name} ({time.monotonic() - t0:.1f} s)")
    print(f"ok: {label}")
    os._exit(0)


if __name__ == "__main__":
    main(CHECKS, "paho-mqtt MQTT 5")
