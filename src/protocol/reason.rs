//! MQTT 5.0 reason codes (section 2.4, table 2-6) and which of them each packet
//! type may carry (the per-packet tables of chapter 3).
//!
//! A code below 0x80 reports success (or an informational outcome), one of
//! 0x80 and above a failure. Several names share a value: 0x00 is Success,
//! Normal disconnection and Granted QoS 0 depending on the packet.

pub const SUCCESS: u8 = 0x00;
pub const NORMAL_DISCONNECTION: u8 = 0x00;
pub const GRANTED_QOS_0: u8 = 0x00;
pub const GRANTED_QOS_1: u8 = 0x01;
pub const GRANTED_QOS_2: u8 = 0x02;
pub const DISCONNECT_WITH_WILL: u8 = 0x04;
pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
pub const CONTINUE_AUTHENTICATION: u8 = 0x18;
pub const REAUTHENTICATE: u8 = 0x19;
pub const UNSPECIFIED_ERROR: u8 = 0x80;
pub const MALFORMED_PACKET: u8 = 0x81;
pub const PROTOCOL_ERROR: u8 = 0x82;
pub const IMPLEMENTATION_SPECIFIC_ERROR: u8 = 0x83;
pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
pub const NOT_AUTHORIZED: u8 = 0x87;
pub const SERVER_UNAVAILABLE: u8 = 0x88;
pub const SERVER_BUSY: u8 = 0x89;
pub const BANNED: u8 = 0x8A;
pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
pub const SESSION_TAKEN_OVER: u8 = 0x8E;
pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
pub const TOPIC_NAME_INVALID: u8 = 0x90;
pub const PACKET_IDENTIFIER_IN_USE: u8 = 0x91;
pub const PACKET_IDENTIFIER_NOT_FOUND: u8 = 0x92;
pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
pub const PACKET_TOO_LARGE: u8 = 0x95;
pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
pub const QUOTA_EXCEEDED: u8 = 0x97;
pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
pub const RETAIN_NOT_SUPPORTED: u8 = 0x9A;
pub const QOS_NOT_SUPPORTED: u8 = 0x9B;
pub const USE_ANOTHER_SERVER: u8 = 0x9C;
pub const SERVER_MOVED: u8 = 0x9D;
pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0x9E;
pub const CONNECTION_RATE_EXCEEDED: u8 = 0x9F;
pub const MAXIMUM_CONNECT_TIME: u8 = 0xA0;
pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: u8 = 0xA1;
pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0xA2;

/// The reason codes a CONNACK may carry (table 3-1).
pub const CONNACK_CODES: &[u8] = &[
    SUCCESS,
    UNSPECIFIED_ERROR,
    MALFORMED_PACKET,
    PROTOCOL_ERROR,
    IMPLEMENTATION_SPECIFIC_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
    CLIENT_IDENTIFIER_NOT_VALID,
    BAD_USER_NAME_OR_PASSWORD,
    NOT_AUTHORIZED,
    SERVER_UNAVAILABLE,
    SERVER_BUSY,
    BANNED,
    BAD_AUTHENTICATION_METHOD,
    TOPIC_NAME_INVALID,
    PACKET_TOO_LARGE,
    QUOTA_EXCEEDED,
    PAYLOAD_FORMAT_INVALID,
    RETAIN_NOT_SUPPORTED,
    QOS_NOT_SUPPORTED,
    USE_ANOTHER_SERVER,
    SERVER_MOVED,
    CONNECTION_RATE_EXCEEDED,
];

/// The reason codes a PUBACK or a PUBREC may carry (tables 3-4 and 3-5).
pub const PUBACK_CODES: &[u8] = &[
    SUCCESS,
    NO_MATCHING_SUBSCRIBERS,
    UNSPECIFIED_ERROR,
    IMPLEMENTATION_SPECIFIC_ERROR,
    NOT_AUTHORIZED,
    TOPIC_NAME_INVALID,
    PACKET_IDENTIFIER_IN_USE,
    QUOTA_EXCEEDED,
    PAYLOAD_FORMAT_INVALID,
];

/// The reason codes a PUBREL or a PUBCOMP may carry (tables 3-6 and 3-7).
pub const PUBREL_CODES: &[u8] = &[SUCCESS, PACKET_IDENTIFIER_NOT_FOUND];

/// The reason codes of a SUBACK payload (table 3-8).
pub const SUBACK_CODES: &[u8] = &[
    GRANTED_QOS_0,
    GRANTED_QOS_1,
    GRANTED_QOS_2,
    UNSPECIFIED_ERROR,
    IMPLEMENTATION_SPECIFIC_ERROR,
    NOT_AUTHORIZED,
    TOPIC_FILTER_INVALID,
    PACKET_IDENTIFIER_IN_USE,
    QUOTA_EXCEEDED,
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
];

/// The reason codes of an UNSUBACK payload (table 3-9).
pub const UNSUBACK_CODES: &[u8] = &[
    SUCCESS,
    NO_SUBSCRIPTION_EXISTED,
    UNSPECIFIED_ERROR,
    IMPLEMENTATION_SPECIFIC_ERROR,
    NOT_AUTHORIZED,
    TOPIC_FILTER_INVALID,
    PACKET_IDENTIFIER_IN_USE,
];

/// The reason codes a DISCONNECT may carry, from either side (table 3-10).
pub const DISCONNECT_CODES: &[u8] = &[
    NORMAL_DISCONNECTION,
    DISCONNECT_WITH_WILL,
    UNSPECIFIED_ERROR,
    MALFORMED_PACKET,
    PROTOCOL_ERROR,
    IMPLEMENTATION_SPECIFIC_ERROR,
    NOT_AUTHORIZED,
    SERVER_BUSY,
    SERVER_SHUTTING_DOWN,
    KEEP_ALIVE_TIMEOUT,
    SESSION_TAKEN_OVER,
    TOPIC_FILTER_INVALID,
    TOPIC_NAME_INVALID,
    RECEIVE_MAXIMUM_EXCEEDED,
    TOPIC_ALIAS_INVALID,
    PACKET_TOO_LARGE,
    MESSAGE_RATE_TOO_HIGH,
    QUOTA_EXCEEDED,
    ADMINISTRATIVE_ACTION,
    PAYLOAD_FORMAT_INVALID,
    RETAIN_NOT_SUPPORTED,
    QOS_NOT_SUPPORTED,
    USE_ANOTHER_SERVER,
    SERVER_MOVED,
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
    CONNECTION_RATE_EXCEEDED,
    MAXIMUM_CONNECT_TIME,
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
];

/// The reason codes an AUTH may carry (table 3-11).
pub const AUTH_CODES: &[u8] = &[SUCCESS, CONTINUE_AUTHENTICATION, REAUTHENTICATE];

/// The spec's name of a reason code ("Success" for 0x00, whatever the packet),
/// or "Unknown reason code".
pub fn name(code: u8) -> &'static str {
    match code {
        SUCCESS => "Success",
        GRANTED_QOS_1 => "Granted QoS 1",
        GRANTED_QOS_2 => "Granted QoS 2",
        DISCONNECT_WITH_WILL => "Disconnect with Will Message",
        NO_MATCHING_SUBSCRIBERS => "No matching subscribers",
        NO_SUBSCRIPTION_EXISTED => "No subscription existed",
        CONTINUE_AUTHENTICATION => "Continue authentication",
        REAUTHENTICATE => "Re-authenticate",
        UNSPECIFIED_ERROR => "Unspecified error",
        MALFORMED_PACKET => "Malformed Packet",
        PROTOCOL_ERROR => "Protocol Error",
        IMPLEMENTATION_SPECIFIC_ERROR => "Implementation specific error",
        UNSUPPORTED_PROTOCOL_VERSION => "Unsupported Protocol Version",
        CLIENT_IDENTIFIER_NOT_VALID => "Client Identifier not valid",
        BAD_USER_NAME_OR_PASSWORD => "Bad User Name or Password",
        NOT_AUTHORIZED => "Not authorized",
        SERVER_UNAVAILABLE => "Server unavailable",
        SERVER_BUSY => "Server busy",
        BANNED => "Banned",
        SERVER_SHUTTING_DOWN => "Server shutting down",
        BAD_AUTHENTICATION_METHOD => "Bad authentication method",
        KEEP_ALIVE_TIMEOUT => "Keep Alive timeout",
        SESSION_TAKEN_OVER => "Session taken over",
        TOPIC_FILTER_INVALID => "Topic Filter invalid",
        TOPIC_NAME_INVALID => "Topic Name invalid",
        PACKET_IDENTIFIER_IN_USE => "Packet Identifier in use",
        PACKET_IDENTIFIER_NOT_FOUND => "Packet Identifier not found",
        RECEIVE_MAXIMUM_EXCEEDED => "Receive Maximum exceeded",
        TOPIC_ALIAS_INVALID => "Topic Alias invalid",
        PACKET_TOO_LARGE => "Packet too large",
        MESSAGE_RATE_TOO_HIGH => "Message rate too high",
        QUOTA_EXCEEDED => "Quota exceeded",
        ADMINISTRATIVE_ACTION => "Administrative action",
        PAYLOAD_FORMAT_INVALID => "Payload format invalid",
        RETAIN_NOT_SUPPORTED => "Retain not supported",
        QOS_NOT_SUPPORTED => "QoS not supported",
        USE_ANOTHER_SERVER => "Use another server",
        SERVER_MOVED => "Server moved",
        SHARED_SUBSCRIPTIONS_NOT_SUPPORTED => "Shared Subscriptions not supported",
        CONNECTION_RATE_EXCEEDED => "Connection rate exceeded",
        MAXIMUM_CONNECT_TIME => "Maximum connect time",
        SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED => "Subscription Identifiers not supported",
        WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED => "Wildcard Subscriptions not supported",
        _ => "Unknown reason code",
    }
}
