//! MQTT 5 enhanced authentication (the AUTH exchange, section 4.12): the
//! table of methods the broker supports. It is empty today, so every
//! Authentication Method gets CONNACK 0x8C; the authentication issue adds
//! methods here (for instance SCRAM-SHA-256), each a state machine driven by
//! AUTH packets.
//!
//! Must not: check usernames and passwords of plain CONNECTs (that is the
//! authentication layer's job, not the AUTH exchange's).

use crate::protocol::reason;

/// Starts the exchange for `method`: `Err(reason code)` refuses the CONNECT.
pub fn start(method: &str) -> Result<(), u8> {
    log::info!("authentication method {method:?} is not supported: CONNACK 0x8C");
    Err(reason::BAD_AUTHENTICATION_METHOD)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_method_is_refused_with_bad_authentication_method() {
        for m in ["SCRAM-SHA-1", "SCRAM-SHA-256", "", "kerberos"] {
            assert_eq!(super::start(m), Err(0x8C));
        }
    }
}
