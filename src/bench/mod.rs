//! `ringmq-bench`: an MQTT load generator, command-line compatible with
//! emqtt_bench where the two overlap (`pub`, `sub`, `conn` and their short
//! flags), plus `sink` (a server that only reads, to measure the generator
//! itself).
//!
//! Thread-per-core like the broker: `--cores N` monoio runtimes, client k on
//! thread k mod N. Each client writes through a buffer that its writer task
//! flushes in one syscall per wake-up, so a publisher at full speed sends
//! hundreds of PUBLISHes per write. The main thread only reports: a rate line
//! per counter every second, then a summary (and `--json`).
//!
//! Transports like emqtt_bench: TCP, TLS (`-S`, [`tls`]), WebSocket (`--ws`,
//! [`ws`]) and both (wss). A client is generic over its stream type, so
//! plain TCP pays nothing for the others.
//!
//! Owns no broker code; uses the crate's codec as an MQTT client.

mod client;
mod sink;
pub mod stats;
mod stream;
mod tls;
mod ws;

use crate::protocol::ProtocolVersion;
use clap::{ArgAction, Args, Parser, Subcommand};
use stats::{COUNTER_NAMES, Counters, Histogram, SeqTracker};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "ringmq-bench",
    about = "MQTT load generator (emqtt_bench compatible flags)",
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct BenchCli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Publishers: -c clients each publishing to -t.
    Pub(PubArgs),
    /// Subscribers: -c clients each subscribed to -t.
    Sub(SubArgs),
    /// Connections only: -c clients connect and stay idle.
    Conn(CommonArgs),
    /// A server that answers CONNECT and then only reads (measures the generator).
    Sink(SinkArgs),
}

/// Flags shared by `pub`, `sub` and `conn`.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Broker host.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(short = 'p', long, default_value_t = 1883)]
    pub port: u16,
    /// MQTT version: 3 (3.1), 4 (3.1.1), 5.
    #[arg(short = 'V', long = "version", default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub version: u8,
    /// MQTT 5 Session Expiry Interval in seconds (CONNECT property; -V 5 only, 0: none).
    #[arg(short = 'x', long = "session-expiry", default_value_t = 0)]
    pub session_expiry: u32,
    /// MQTT 5 Topic Alias Maximum to announce in CONNECT (-V 5 only, 0:
    /// none): lets the broker send topic aliases instead of topics.
    #[arg(long = "topic-alias-maximum", default_value_t = 0)]
    pub topic_alias_maximum: u16,
    /// TLS. Without --cacertfile the server certificate is NOT verified (as
    /// in emqtt_bench: for self-signed test servers).
    #[arg(short = 'S', long = "ssl", num_args = 0..=1, default_missing_value = "true",
          default_value_t = false, action = ArgAction::Set)]
    pub ssl: bool,
    /// With -S: PEM CA certificate(s) to verify the server (chain and -h name) against.
    #[arg(long)]
    pub cacertfile: Option<PathBuf>,
    /// With -S: PEM client certificate, for servers that require one (mutual TLS).
    #[arg(long)]
    pub certfile: Option<PathBuf>,
    /// With -S: PEM private key of --certfile.
    #[arg(long)]
    pub keyfile: Option<PathBuf>,
    /// MQTT over WebSocket (subprotocol "mqtt"); with -S, over wss.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false,
          action = ArgAction::Set)]
    pub ws: bool,
    /// With --ws: the HTTP path of the WebSocket endpoint.
    #[arg(long = "ws-path", default_value = "/mqtt")]
    pub ws_path: String,
    /// Number of clients.
    #[arg(short = 'c', long = "count", default_value_t = 200)]
    pub count: usize,
    /// Start number of the client sequence (%i).
    #[arg(short = 'n', long = "startnumber", default_value_t = 0)]
    pub start_number: usize,
    /// Milliseconds between two client connects.
    #[arg(short = 'i', long = "interval", default_value_t = 10)]
    pub interval_ms: u64,
    /// Connects per second (overrides -i).
    #[arg(short = 'R', long = "connrate")]
    pub conn_rate: Option<u64>,
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    #[arg(short = 'P', long)]
    pub password: Option<String>,
    /// Keepalive in seconds.
    #[arg(short = 'k', long, default_value_t = 300)]
    pub keepalive: u16,
    /// Clean session: true or false.
    #[arg(short = 'C', long = "clean", default_value_t = true, action = ArgAction::Set)]
    pub clean: bool,
    /// Client id prefix: ids are PREFIX_bench_{pub|sub|conn}_N.
    #[arg(long, default_value = "ringmq")]
    pub prefix: String,
    /// Local source addresses, comma separated; clients take them in turn
    /// (each address allows ~64k connections to one broker port).
    #[arg(long, value_delimiter = ',')]
    pub ifaddr: Vec<IpAddr>,
    /// Stop after this many seconds (0: when the work is done, or on Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub duration: u64,
    /// Threads (one monoio runtime each).
    #[arg(long, default_value_t = 1)]
    pub cores: usize,
    /// Print the summary as one JSON object on stdout (rate lines go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Print no per-second rate lines.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct PubArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Topic; %i client number, %c client id, %u username.
    #[arg(short = 't', long)]
    pub topic: String,
    /// Payload bytes (>= 16 carries timestamp and sequence number).
    #[arg(short = 's', long = "size", default_value_t = 256)]
    pub size: usize,
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Milliseconds between two publishes of one client (0: as fast as the window allows).
    #[arg(short = 'I', long = "interval_of_msg", default_value_t = 1000)]
    pub interval_of_msg: u64,
    /// QoS 1/2 messages in flight per client.
    #[arg(short = 'F', long, default_value_t = 1)]
    pub inflight: usize,
    /// Messages to publish in total, over all clients (0: no limit).
    #[arg(short = 'L', long, default_value_t = 0)]
    pub limit: u64,
    /// Retain flag: true or false.
    #[arg(short = 'r', long, default_value_t = false, action = ArgAction::Set)]
    pub retain: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SubArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Topic filter; %i client number, %c client id, %u username.
    #[arg(short = 't', long)]
    pub topic: String,
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
}

#[derive(Args, Debug, Clone)]
pub struct SinkArgs {
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:1884")]
    pub listen: SocketAddr,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    #[arg(long)]
    pub json: bool,
    /// TLS with --certfile and --keyfile.
    #[arg(short = 'S', long = "ssl", num_args = 0..=1, default_missing_value = "true",
          default_value_t = false, action = ArgAction::Set)]
    pub ssl: bool,
    /// With -S: the sink's PEM certificate.
    #[arg(long)]
    pub certfile: Option<PathBuf>,
    /// With -S: the PEM private key of --certfile.
    #[arg(long)]
    pub keyfile: Option<PathBuf>,
    /// With -S: require a client certificate signed by this PEM CA (mutual TLS).
    #[arg(long)]
    pub cacertfile: Option<PathBuf>,
    /// MQTT over WebSocket (subprotocol "mqtt"); with -S, over wss.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false,
          action = ArgAction::Set)]
    pub ws: bool,
    /// With --ws: the only HTTP path accepted (others get 404).
    #[arg(long = "ws-path", default_value = "/mqtt")]
    pub ws_path: String,
    /// Decode every packet (in the client's MQTT version) and answer like a
    /// broker with no subscribers: PUBACK / PUBREC with reason 0x10 in MQTT 5,
    /// PUBCOMP, SUBACK, PINGRESP. Slower than the default (count frames only).
    #[arg(long)]
    pub ack: bool,
}

/// What a client does after CONNECT.
#[derive(Clone, Debug)]
pub enum Role {
    Pub {
        topic: String,
        size: usize,
        qos: u8,
        interval_of_msg_ms: u64,
        inflight: usize,
        retain: bool,
    },
    Sub {
        topic: String,
        qos: u8,
    },
    Conn,
}

impl Role {
    fn kind(&self) -> &'static str {
        match self {
            Role::Pub { .. } => "pub",
            Role::Sub { .. } => "sub",
            Role::Conn => "conn",
        }
    }
}

/// TLS settings of every client (`-S`).
pub struct TlsPlan {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

/// WebSocket settings of every client (`--ws`).
pub struct WsPlan {
    /// The request path (`--ws-path`).
    pub path: String,
    /// The `Host` header: host:port.
    pub host: String,
}

/// Everything a generator thread needs, shared read-only.
pub struct Plan {
    pub common: CommonArgs,
    pub role: Role,
    pub broker: SocketAddr,
    pub version: ProtocolVersion,
    pub tls: Option<TlsPlan>,
    pub ws: Option<WsPlan>,
    /// Messages left to publish when `-L` is set.
    pub remaining: Option<AtomicU64>,
    pub stop: AtomicBool,
}

/// What a generator thread hands back at the end.
pub struct ThreadResult {
    pub latency_us: Histogram,
    pub seq: SeqTracker,
    pub publishers_done: usize,
}

/// Entry point of the `ringmq-bench` binary; returns the exit status.
pub fn main() -> i32 {
    let cli = BenchCli::parse();
    let (common, role) = match cli.cmd {
        Cmd::Sink(a) => return sink::run(&a),
        Cmd::Conn(c) => (c, Role::Conn),
        Cmd::Sub(s) => (
            s.common,
            Role::Sub {
                topic: s.topic,
                qos: s.qos,
            },
        ),
        Cmd::Pub(p) => {
            let role = Role::Pub {
                topic: p.topic,
                size: p.size,
                qos: p.qos,
                interval_of_msg_ms: p.interval_of_msg,
                inflight: p.inflight.max(1),
                retain: p.retain,
            };
            let remaining = (p.limit > 0).then(|| AtomicU64::new(p.limit));
            return run(p.common, role, remaining);
        }
    };
    run(common, role, None)
}

fn run(common: CommonArgs, role: Role, remaining: Option<AtomicU64>) -> i32 {
    let broker = match (common.host.as_str(), common.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            eprintln!(
                "ringmq-bench: cannot resolve {}:{}",
                common.host, common.port
            );
            return 2;
        }
    };
    let (tls, ws) = match transport(&common) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ringmq-bench: {e}");
            return 2;
        }
    };
    let version = match common.version {
        3 => ProtocolVersion::V31,
        5 => ProtocolVersion::V5,
        _ => ProtocolVersion::V311,
    };
    if common.session_expiry > 0 && version != ProtocolVersion::V5 {
        eprintln!("ringmq-bench: -x (session expiry) is an MQTT 5 property: ignored without -V 5");
    }
    let cores = common.cores.max(1);
    let plan = Arc::new(Plan {
        common: common.clone(),
        role: role.clone(),
        broker,
        version,
        tls,
        ws,
        remaining,
        stop: AtomicBool::new(false),
    });
    let stop_signal = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop_signal.clone());
    }
    let counters: Vec<Arc<Counters>> = (0..cores).map(|_| Arc::new(Counters::default())).collect();
    let mut threads = Vec::new();
    for t in 0..cores {
        let (plan, counters) = (plan.clone(), counters[t].clone());
        let spawned = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || client::thread_main(t, cores, plan, counters));
        match spawned {
            Ok(h) => threads.push(h),
            Err(e) => {
                eprintln!("ringmq-bench: cannot start thread: {e}");
                return 1;
            }
        }
    }

    let started = Instant::now();
    let mut last = [0u64; COUNTER_NAMES.len()];
    let mut tick = 0u64;
    let total = |i: usize| counters.iter().map(|c| c.get(i)).sum::<u64>();
    // When the last successful connect was seen (connect rate = count / this).
    let (mut connected, mut connect_done_s) = (0u64, 0f64);
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let elapsed = started.elapsed();
        let now_connected = total(stats::Counter::ConnectSucc as usize);
        if now_connected != connected {
            connected = now_connected;
            connect_done_s = elapsed.as_secs_f64();
        }
        if elapsed.as_secs() > tick {
            tick = elapsed.as_secs();
            for (i, name) in COUNTER_NAMES.iter().enumerate() {
                let now = total(i);
                if now != last[i] && !common.quiet {
                    eprintln!("{tick}s {name} total={now} rate={}/sec", now - last[i]);
                }
                last[i] = now;
            }
        }
        let timed_out = common.duration > 0 && elapsed >= Duration::from_secs(common.duration);
        let done = threads.iter().all(|t| t.is_finished());
        if timed_out || stop_signal.load(Ordering::Relaxed) || done {
            break;
        }
    }
    plan.stop.store(true, Ordering::Release);
    let elapsed_s = started.elapsed().as_secs_f64();
    let mut latency = stats::new_histogram();
    let mut seq = SeqTracker::default();
    // Threads whose clients are stuck (a broker that never answers a TCP
    // connect) are not waited for past the grace period: the counters are
    // already in, only their histograms are missing, and exiting ends them.
    let grace = Instant::now() + Duration::from_secs(3);
    while Instant::now() < grace && !threads.iter().all(|t| t.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut unfinished = 0;
    for t in threads {
        if !t.is_finished() {
            unfinished += 1;
            continue;
        }
        if let Ok(r) = t.join() {
            let _ = latency.add(&r.latency_us);
            seq.merge(r.seq);
        }
    }
    if unfinished > 0 {
        eprintln!("ringmq-bench: {unfinished} thread(s) still had clients connecting at the end");
    }
    let mut summary = Summary::new(&plan, elapsed_s, total, &latency, &seq);
    summary.connect_done_s = connect_done_s;
    if common.json {
        println!("{}", summary.json());
    } else {
        summary.print();
    }
    0
}

/// The TLS and WebSocket settings the flags ask for, checked once.
fn transport(c: &CommonArgs) -> Result<(Option<TlsPlan>, Option<WsPlan>), String> {
    let tls = if c.ssl {
        let config = tls::client_config(
            c.cacertfile.as_deref(),
            c.certfile.as_deref(),
            c.keyfile.as_deref(),
        )?;
        Some(TlsPlan {
            config,
            server_name: tls::server_name(&c.host)?,
        })
    } else {
        if c.cacertfile.is_some() || c.certfile.is_some() || c.keyfile.is_some() {
            eprintln!("ringmq-bench: --cacertfile/--certfile/--keyfile apply to -S only: ignored");
        }
        None
    };
    let ws = if c.ws {
        let p = &c.ws_path;
        if !p.starts_with('/')
            || p.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(format!(
                "--ws-path {p:?}: must start with / and have no spaces or control characters"
            ));
        }
        let host = if c.host.contains(':') {
            format!("[{}]:{}", c.host, c.port)
        } else {
            format!("{}:{}", c.host, c.port)
        };
        Some(WsPlan {
            path: p.clone(),
            host,
        })
    } else {
        None
    };
    Ok((tls, ws))
}

/// The end-of-run summary.
struct Summary {
    kind: &'static str,
    clients: usize,
    elapsed_s: f64,
    totals: Vec<(&'static str, u64)>,
    latency: Option<[u64; 5]>,
    unique: u64,
    lost_gaps: u64,
    duplicated: u64,
    out_of_order: u64,
    connect_done_s: f64,
}

impl Summary {
    fn new(
        plan: &Plan,
        elapsed_s: f64,
        total: impl Fn(usize) -> u64,
        h: &Histogram,
        seq: &SeqTracker,
    ) -> Self {
        let latency = (!h.is_empty()).then(|| {
            [
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.max(),
                h.mean() as u64,
            ]
        });
        Summary {
            kind: plan.role.kind(),
            clients: plan.common.count,
            elapsed_s,
            totals: COUNTER_NAMES
                .iter()
                .enumerate()
                .map(|(i, n)| (*n, total(i)))
                .collect(),
            latency,
            unique: seq.unique,
            lost_gaps: seq.gaps(),
            duplicated: seq.duplicated,
            out_of_order: seq.out_of_order,
            connect_done_s: 0.0,
        }
    }

    fn print(&self) {
        println!(
            "== ringmq-bench {} summary: {} clients, {:.1}s",
            self.kind, self.clients, self.elapsed_s
        );
        for (name, v) in &self.totals {
            if *v > 0 {
                println!(
                    "{name}: total={v} rate={:.0}/sec",
                    *v as f64 / self.elapsed_s.max(1e-9)
                );
            }
        }
        if let Some([p50, p90, p99, max, mean]) = self.latency {
            println!("latency_us: p50={p50} p90={p90} p99={p99} max={max} mean={mean}");
        }
        if self.kind == "sub" {
            println!(
                "sequence: unique={} lost={} duplicated={} out_of_order={}",
                self.unique, self.lost_gaps, self.duplicated, self.out_of_order
            );
        }
    }

    fn json(&self) -> String {
        let mut totals = serde_json::Map::new();
        let mut rates = serde_json::Map::new();
        for (name, v) in &self.totals {
            totals.insert((*name).into(), (*v).into());
            rates.insert(
                (*name).into(),
                ((*v as f64) / self.elapsed_s.max(1e-9)).into(),
            );
        }
        let latency = self.latency.map(|[p50, p90, p99, max, mean]| {
            serde_json::json!({"p50": p50, "p90": p90, "p99": p99, "max": max, "mean": mean})
        });
        serde_json::json!({
            "kind": self.kind,
            "clients": self.clients,
            "elapsed_s": self.elapsed_s,
            "totals": totals,
            "rates": rates,
            "latency_us": latency,
            "unique": self.unique,
            "lost": self.lost_gaps,
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "connect_done_s": self.connect_done_s,
        })
        .to_string()
    }
}
