//! Configuration: command-line flags (clap) over a TOML file over embedded
//! defaults, validated once at start into an immutable [`Config`] that every
//! core shares read-only.
//!
//! A bad value is reported as one line naming the key or flag; `main` exits
//! with status 2. Limits carry their unit last (`packet_size_max_bytes`).

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Which io driver each core's monoio runtime uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IoMode {
    /// io_uring when the kernel allows it, epoll otherwise.
    Auto,
    /// io_uring; fail at start if it cannot be set up.
    Uring,
    /// epoll (monoio's legacy driver).
    Epoll,
}

/// What a full session queue does with one more message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QueueFullPolicy {
    /// Drop the new message (mosquitto's behaviour).
    DropNew,
    /// Drop the oldest queued message to make room (EMQX's behaviour).
    DropOld,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Addresses to listen on (plain MQTT over TCP).
    pub listen: Vec<SocketAddr>,
    /// Number of cores (monoio runtimes, one thread each).
    pub cores: usize,
    pub io: IoMode,
    /// Connections accepted across all cores; more are closed at accept.
    pub connections_max: usize,
    /// Largest packet accepted from a client, fixed header included.
    pub packet_size_max_bytes: usize,
    /// QoS 1/2 messages sent to a client and not yet acknowledged.
    pub inflight_max: usize,
    /// Messages queued per session behind the inflight window (or while offline).
    pub queue_messages_max: usize,
    pub queue_full_policy: QueueFullPolicy,
    /// Queue QoS 0 messages for offline persistent sessions (mosquitto: off).
    pub queue_qos0_offline: bool,
    /// Pause publishers while a connected subscriber's queue is full instead
    /// of dropping QoS 1/2 messages for it.
    pub backpressure: bool,
    /// A congested subscriber that acknowledges nothing for this long is
    /// stalled: its publishers are released and the drop policy applies.
    pub stall_timeout_s: u64,
    /// Bytes waiting in a connection's write buffer above which QoS 0
    /// messages for it are dropped (a stalled reader costs only itself).
    pub write_buffer_max_bytes: usize,
    /// Longest a QoS 0 delivery waits, while its core is busy writing, so
    /// that one write carries several messages (0: always written at once).
    pub write_coalesce_us: u64,
    /// Keepalive values above this are refused (CONNACK 0x02, as mosquitto
    /// does for 3.1.1); 65535 means no limit.
    pub keepalive_max_s: u16,
    /// Time a new connection has to send CONNECT.
    pub connect_timeout_s: u64,
    /// Interval of the `$SYS/broker/...` statistics topics; 0 disables them.
    pub sys_interval_s: u64,
    pub log_level: log::LevelFilter,
    /// MQTT 5 Receive Maximum the broker advertises: QoS 2 PUBLISHes a v5
    /// client may have awaiting PUBREL (QoS 1 is acknowledged at once).
    pub receive_maximum: u16,
    /// Highest QoS accepted from clients and granted to subscriptions.
    pub qos_max: crate::protocol::QoS,
    /// Retained messages are stored (false: a PUBLISH with RETAIN is refused).
    pub retain_available: bool,
    /// Topic aliases a v5 client may define towards the broker (0: none).
    pub topic_alias_max: u16,
    /// Longest session expiry interval granted, seconds (u32::MAX: no cap).
    pub session_expiry_max_s: u32,
    pub wildcard_subscriptions: bool,
    pub subscription_identifiers: bool,
    pub shared_subscriptions: bool,
    /// Prefix sent as Response Information (followed by the client id) to v5
    /// clients that request it; `None`: not sent.
    pub response_information: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1883))],
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            io: IoMode::Auto,
            connections_max: 1_000_000,
            packet_size_max_bytes: 1024 * 1024,
            inflight_max: 32,
            queue_messages_max: 1000,
            queue_full_policy: QueueFullPolicy::DropNew,
            queue_qos0_offline: false,
            backpressure: true,
            stall_timeout_s: 5,
            write_buffer_max_bytes: 1024 * 1024,
            write_coalesce_us: 10_000,
            keepalive_max_s: u16::MAX,
            connect_timeout_s: 10,
            sys_interval_s: 10,
            log_level: log::LevelFilter::Info,
            receive_maximum: 1024,
            qos_max: crate::protocol::QoS::ExactlyOnce,
            retain_available: true,
            topic_alias_max: 1024,
            session_expiry_max_s: u32::MAX,
            wildcard_subscriptions: true,
            subscription_identifiers: true,
            shared_subscriptions: true,
            response_information: None,
        }
    }
}

/// Most cores supported: the subscription index keeps one bit per core in a u64.
pub const CORES_MAX: usize = 64;

/// Command line of the `ringmq` binary. Every flag overrides the file.
#[derive(Parser, Debug, Default)]
#[command(
    name = "ringmq",
    version,
    about = "MQTT broker, thread-per-core on io_uring"
)]
pub struct Cli {
    /// TOML configuration file (keys as in ringmq.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen address, repeatable [default: 127.0.0.1:1883].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,
    /// Number of cores (threads) [default: available cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=CORES_MAX as u64))]
    pub cores: Option<u64>,
    /// io driver.
    #[arg(long, value_enum)]
    pub io: Option<IoMode>,
    /// error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<log::LevelFilter>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Bytes, fixed header included.
    #[arg(long, value_parser = clap::value_parser!(u64).range(16..=268_435_460))]
    pub max_packet_size: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65_535))]
    pub max_inflight: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub max_queued_messages: Option<u64>,
    #[arg(long, value_enum)]
    pub queue_full_policy: Option<QueueFullPolicy>,
    /// true: pause publishers of a congested connected subscriber; false: drop.
    #[arg(long, value_name = "BOOL")]
    pub backpressure: Option<bool>,
    /// Seconds without an acknowledgement after which a congested subscriber is stalled.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub stall_timeout: Option<u64>,
    /// Microseconds a QoS 0 delivery may wait while its core is busy, so
    /// that one write carries several messages (0: written at once).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub write_coalesce_us: Option<u64>,
    /// Seconds; larger client keepalives are refused.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65_535))]
    pub max_keepalive: Option<u64>,
    /// Seconds between $SYS updates; 0 disables them.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub sys_interval: Option<u64>,
    /// MQTT 5 Receive Maximum advertised to clients.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65_535))]
    pub receive_maximum: Option<u64>,
    /// Highest QoS accepted and granted (0, 1 or 2).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=2))]
    pub max_qos: Option<u64>,
    /// false: retained messages are refused.
    #[arg(long, value_name = "BOOL")]
    pub retain_available: Option<bool>,
    /// Topic aliases a v5 client may define (0: none).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=65_535))]
    pub max_topic_alias: Option<u64>,
    /// Longest session expiry interval granted, seconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=u32::MAX as u64))]
    pub max_session_expiry: Option<u64>,
    #[arg(long, value_name = "BOOL")]
    pub wildcard_subscriptions: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    pub subscription_identifiers: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    pub shared_subscriptions: Option<bool>,
    /// Response Information prefix for v5 clients that request it.
    #[arg(long, value_name = "PREFIX")]
    pub response_information: Option<String>,
}

/// A configuration error: names the key, says what was wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn key_error(key: &str, want: &str, got: &toml::Value) -> ConfigError {
    ConfigError(format!("config key `{key}`: expected {want}, got {got}"))
}

/// Reads an integer key within `lo..=hi`.
fn int_in(key: &str, v: &toml::Value, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    match v.as_integer() {
        Some(i) if i >= 0 && (i as u64) >= lo && (i as u64) <= hi => Ok(i as u64),
        _ => Err(key_error(key, &format!("an integer from {lo} to {hi}"), v)),
    }
}

fn enum_value<T: ValueEnum>(key: &str, v: &toml::Value) -> Result<T, ConfigError> {
    let names: Vec<String> = T::value_variants()
        .iter()
        .filter_map(|x| x.to_possible_value().map(|p| p.get_name().to_string()))
        .collect();
    let want = format!("one of {}", names.join(", "));
    let s = v.as_str().ok_or_else(|| key_error(key, &want, v))?;
    T::from_str(s, true).map_err(|_| key_error(key, &want, v))
}

fn bool_of(key: &str, v: &toml::Value) -> Result<bool, ConfigError> {
    v.as_bool()
        .ok_or_else(|| key_error(key, "true or false", v))
}

/// A QoS from an already range-checked 0..=2.
fn qos_of(v: u64) -> crate::protocol::QoS {
    crate::protocol::QoS::from_bits(v as u8).unwrap_or(crate::protocol::QoS::ExactlyOnce)
}

impl Config {
    /// Applies the keys of a TOML document over `self`.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError(format!("config file: {}", e.message())))?;
        for (key, v) in &table {
            match key.as_str() {
                "listen" => {
                    let items: Vec<&toml::Value> = match v {
                        toml::Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    let mut addrs = Vec::new();
                    for item in items {
                        let addr = item
                            .as_str()
                            .and_then(|s| s.parse::<SocketAddr>().ok())
                            .ok_or_else(|| key_error(key, "\"IP:PORT\" or a list of them", item))?;
                        addrs.push(addr);
                    }
                    if addrs.is_empty() {
                        return Err(key_error(key, "at least one address", v));
                    }
                    self.listen = addrs;
                }
                "cores" => self.cores = int_in(key, v, 1, CORES_MAX as u64)? as usize,
                "io" => self.io = enum_value(key, v)?,
                "max_connections" => {
                    self.connections_max = int_in(key, v, 1, u32::MAX as u64)? as usize
                }
                "max_packet_size" => {
                    self.packet_size_max_bytes = int_in(key, v, 16, 268_435_460)? as usize
                }
                "max_inflight" => self.inflight_max = int_in(key, v, 1, 65_535)? as usize,
                "max_queued_messages" => {
                    self.queue_messages_max = int_in(key, v, 0, 10_000_000)? as usize
                }
                "queue_full_policy" => self.queue_full_policy = enum_value(key, v)?,
                "backpressure" => {
                    self.backpressure = v
                        .as_bool()
                        .ok_or_else(|| key_error(key, "true or false", v))?
                }
                "stall_timeout" => self.stall_timeout_s = int_in(key, v, 1, 3600)?,
                "queue_qos0_messages" => {
                    self.queue_qos0_offline = v
                        .as_bool()
                        .ok_or_else(|| key_error(key, "true or false", v))?
                }
                "max_write_buffer" => {
                    self.write_buffer_max_bytes = int_in(key, v, 1024, 1 << 30)? as usize
                }
                "write_coalesce_us" => self.write_coalesce_us = int_in(key, v, 0, 100_000)?,
                "max_keepalive" => self.keepalive_max_s = int_in(key, v, 1, 65_535)? as u16,
                "connect_timeout" => self.connect_timeout_s = int_in(key, v, 1, 3600)?,
                "sys_interval" => self.sys_interval_s = int_in(key, v, 0, 86_400)?,
                "log_level" => {
                    self.log_level = v
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| key_error(key, "error, warn, info, debug or trace", v))?
                }
                "receive_maximum" => self.receive_maximum = int_in(key, v, 1, 65_535)? as u16,
                "max_qos" => self.qos_max = qos_of(int_in(key, v, 0, 2)?),
                "retain_available" => self.retain_available = bool_of(key, v)?,
                "max_topic_alias" => self.topic_alias_max = int_in(key, v, 0, 65_535)? as u16,
                "max_session_expiry" => {
                    self.session_expiry_max_s = int_in(key, v, 0, u32::MAX as u64)? as u32
                }
                "wildcard_subscriptions" => self.wildcard_subscriptions = bool_of(key, v)?,
                "subscription_identifiers" => self.subscription_identifiers = bool_of(key, v)?,
                "shared_subscriptions" => self.shared_subscriptions = bool_of(key, v)?,
                "response_information" => {
                    let s = v.as_str().ok_or_else(|| key_error(key, "a string", v))?;
                    self.response_information = Some(s.to_string());
                }
                other => return Err(ConfigError(format!("config key `{other}`: unknown key"))),
            }
        }
        Ok(())
    }

    /// Applies the flags given on the command line over `self`.
    pub fn apply_cli(&mut self, cli: &Cli) {
        if !cli.listen.is_empty() {
            self.listen = cli.listen.clone();
        }
        if let Some(v) = cli.cores {
            self.cores = v as usize;
        }
        if let Some(v) = cli.io {
            self.io = v;
        }
        if let Some(v) = cli.log_level {
            self.log_level = v;
        }
        if let Some(v) = cli.max_connections {
            self.connections_max = v as usize;
        }
        if let Some(v) = cli.max_packet_size {
            self.packet_size_max_bytes = v as usize;
        }
        if let Some(v) = cli.max_inflight {
            self.inflight_max = v as usize;
        }
        if let Some(v) = cli.max_queued_messages {
            self.queue_messages_max = v as usize;
        }
        if let Some(v) = cli.queue_full_policy {
            self.queue_full_policy = v;
        }
        if let Some(v) = cli.backpressure {
            self.backpressure = v;
        }
        if let Some(v) = cli.stall_timeout {
            self.stall_timeout_s = v;
        }
        if let Some(v) = cli.write_coalesce_us {
            self.write_coalesce_us = v;
        }
        if let Some(v) = cli.max_keepalive {
            self.keepalive_max_s = v as u16;
        }
        if let Some(v) = cli.sys_interval {
            self.sys_interval_s = v;
        }
        if let Some(v) = cli.receive_maximum {
            self.receive_maximum = v as u16;
        }
        if let Some(v) = cli.max_qos {
            self.qos_max = qos_of(v);
        }
        if let Some(v) = cli.retain_available {
            self.retain_available = v;
        }
        if let Some(v) = cli.max_topic_alias {
            self.topic_alias_max = v as u16;
        }
        if let Some(v) = cli.max_session_expiry {
            self.session_expiry_max_s = v as u32;
        }
        if let Some(v) = cli.wildcard_subscriptions {
            self.wildcard_subscriptions = v;
        }
        if let Some(v) = cli.subscription_identifiers {
            self.subscription_identifiers = v;
        }
        if let Some(v) = cli.shared_subscriptions {
            self.shared_subscriptions = v;
        }
        if let Some(v) = &cli.response_information {
            self.response_information = Some(v.clone());
        }
    }

    /// Defaults, then the file named by `--config`, then the flags.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(path) = &cli.config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
            config.apply_toml(&text)?;
        }
        config.apply_cli(cli);
        config.cores = config.cores.min(CORES_MAX);
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback() {
        let c = Config::default();
        assert_eq!(c.listen, vec!["127.0.0.1:1883".parse().unwrap()]);
    }

    #[test]
    fn toml_keys_apply() {
        let mut c = Config::default();
        c.apply_toml(
            "listen = [\"127.0.0.1:1884\", \"[::1]:1885\"]\ncores = 3\nio = \"epoll\"\n\
             max_inflight = 10\nmax_queued_messages = 5\nqueue_full_policy = \"drop-old\"\n\
             max_keepalive = 60\nlog_level = \"debug\"\nmax_packet_size = 2048\n\
             write_coalesce_us = 0\n",
        )
        .unwrap();
        assert_eq!(c.write_coalesce_us, 0);
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.cores, 3);
        assert_eq!(c.io, IoMode::Epoll);
        assert_eq!(c.inflight_max, 10);
        assert_eq!(c.queue_messages_max, 5);
        assert_eq!(c.queue_full_policy, QueueFullPolicy::DropOld);
        assert_eq!(c.keepalive_max_s, 60);
        assert_eq!(c.log_level, log::LevelFilter::Debug);
        assert_eq!(c.packet_size_max_bytes, 2048);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (doc, key) in [
            ("max_inflight = 0", "max_inflight"),
            ("max_inflight = \"x\"", "max_inflight"),
            ("cores = 65", "cores"),
            ("io = \"kqueue\"", "io"),
            ("listen = \"nowhere\"", "listen"),
            ("log_level = \"loud\"", "log_level"),
            ("bogus = 1", "bogus"),
            ("max_qos = 3", "max_qos"),
            ("receive_maximum = 0", "receive_maximum"),
            ("max_topic_alias = 70000", "max_topic_alias"),
            ("max_session_expiry = -1", "max_session_expiry"),
            ("retain_available = 1", "retain_available"),
            ("shared_subscriptions = \"no\"", "shared_subscriptions"),
            ("response_information = 5", "response_information"),
            ("write_coalesce_us = 100001", "write_coalesce_us"),
            ("write_coalesce_us = -1", "write_coalesce_us"),
        ] {
            let err = Config::default().apply_toml(doc).unwrap_err();
            assert!(err.0.contains(&format!("`{key}`")), "{doc}: {err}");
        }
    }

    #[test]
    fn mqtt5_keys_apply() {
        let mut c = Config::default();
        c.apply_toml(
            "receive_maximum = 10\nmax_qos = 1\nretain_available = false\n\
             max_topic_alias = 0\nmax_session_expiry = 3600\nwildcard_subscriptions = false\n\
             subscription_identifiers = false\nshared_subscriptions = false\n\
             response_information = \"resp/\"\n",
        )
        .unwrap();
        assert_eq!(c.receive_maximum, 10);
        assert_eq!(c.qos_max, crate::protocol::QoS::AtLeastOnce);
        assert!(!c.retain_available);
        assert_eq!(c.topic_alias_max, 0);
        assert_eq!(c.session_expiry_max_s, 3600);
        assert!(
            !c.wildcard_subscriptions && !c.subscription_identifiers && !c.shared_subscriptions
        );
        assert_eq!(c.response_information.as_deref(), Some("resp/"));
        let cli = Cli::parse_from(["ringmq", "--max-qos", "0", "--max-session-expiry", "5"]);
        c.apply_cli(&cli);
        assert_eq!(c.qos_max, crate::protocol::QoS::AtMostOnce);
        assert_eq!(c.session_expiry_max_s, 5);
    }

    #[test]
    fn flags_override_file() {
        let cli = Cli::parse_from(["ringmq", "--cores", "2", "--max-inflight", "7"]);
        let mut c = Config::default();
        c.apply_toml("cores = 4\nmax_inflight = 3").unwrap();
        c.apply_cli(&cli);
        assert_eq!(c.cores, 2);
        assert_eq!(c.inflight_max, 7);
    }
}

#[cfg(test)]
mod example_file {
    #[test]
    fn example_config_is_valid_and_shows_the_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ringmq.example.toml"))
                .unwrap();
        let mut c = super::Config::default();
        c.apply_toml(&text).unwrap();
        let d = super::Config::default();
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.inflight_max, d.inflight_max);
        assert_eq!(c.queue_messages_max, d.queue_messages_max);
        assert_eq!(c.packet_size_max_bytes, d.packet_size_max_bytes);
        assert_eq!(c.keepalive_max_s, d.keepalive_max_s);
        assert_eq!(c.sys_interval_s, d.sys_interval_s);
        assert_eq!(c.receive_maximum, d.receive_maximum);
        assert_eq!(c.qos_max, d.qos_max);
        assert_eq!(c.retain_available, d.retain_available);
        assert_eq!(c.topic_alias_max, d.topic_alias_max);
        assert_eq!(c.session_expiry_max_s, d.session_expiry_max_s);
        assert_eq!(c.response_information, d.response_information);
        assert_eq!(c.write_coalesce_us, d.write_coalesce_us);
    }
}
