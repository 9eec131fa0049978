//! Protocol levels: an MQTT 5 CONNECT is decoded (the codec speaks v5) but
//! refused with the v5 CONNACK for an unsupported version (0x84) until the
//! broker's MQTT 5 behaviour lands, so v5 clients can fall back to 3.1.1; the
//! broker keeps serving 3.1.1 clients meanwhile.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn mqtt5_connect_gets_v5_connack_0x84_then_close() {
    for cores in CORE_COUNTS {
        let b = Broker::start(&["--cores", cores]);
        let mut v5 = Raw::connect(b.port);
        // CONNECT "MQTT" level 5, clean start, keepalive 30, property length 0,
        // client id "v5-client".
        let mut connect = vec![0x10, 0];
        connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 30, 0]);
        connect.extend_from_slice(&[0, 9]);
        connect.extend_from_slice(b"v5-client");
        connect[1] = (connect.len() - 2) as u8;
        v5.send(&connect);
        assert_eq!(
            v5.recv_bytes(Duration::from_secs(3)),
            vec![0x20, 0x03, 0x00, 0x84, 0x00],
            "cores {cores}: v5 CONNACK with reason 0x84, then close"
        );
        // A 3.1.1 client is served as before.
        let mut v4 = Raw::connect(b.port);
        v4.mqtt_connect("v4-client", true, 30);
        v4.send_packet(&ringmq::protocol::Packet::PingReq);
        assert_eq!(
            v4.recv(Duration::from_secs(3)),
            Some(ringmq::protocol::Packet::PingResp)
        );
        assert!(b.wait_log("MQTT 5 is not supported yet", Duration::from_secs(2)));
    }
}
