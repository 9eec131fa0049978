//! Test harness: starts the real `ringmq` binary on a free 127.0.0.1 port,
//! and gives tests two kinds of clients: a real third-party MQTT client
//! (rumqttc) and a raw socket that speaks bytes (for malformed input and for
//! checking exact wire behaviour).
#![allow(dead_code)]

use bytes::BytesMut;
use ringmq::protocol::{self, Packet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A broker process; killed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Broker {
    /// Starts `ringmq --listen 127.0.0.1:0 --log-level debug ARGS...` and
    /// waits for its "listening on" line. `RINGMQ_TEST_IO=epoll|uring` in the
    /// environment picks the io driver (CI runs the suite once with epoll).
    pub fn start(args: &[&str]) -> Broker {
        let io = std::env::var("RINGMQ_TEST_IO").unwrap_or_else(|_| "auto".into());
        let mut all = vec![
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "debug",
            "--io",
            &io,
        ];
        all.extend_from_slice(args);
        Self::start_raw(&all)
    }

    /// Starts the binary with exactly `args`.
    pub fn start_raw(args: &[&str]) -> Broker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringmq");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("listening on 127.0.0.1:")
                    && let Some(tx) = tx.take()
                {
                    let port: u16 = line[i + "listening on 127.0.0.1:".len()..]
                        .trim()
                        .parse()
                        .expect("port");
                    let _ = tx.send(port);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "broker did not report its port; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Broker { child, port, logs }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "broker did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident set size of the broker process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Core counts every behavioural test runs with: one core, and four cores so
/// that clients land on different cores.
pub const CORE_COUNTS: [&str; 2] = ["1", "4"];

/// The cores of a broker started with `--cores n`, for choosing client ids
/// whose sessions live on different cores.
pub fn id_on_core(prefix: &str, core: usize, cores: usize) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| ringmq::broker::home_core(id, cores) == core)
        .unwrap()
}

// ----- raw socket client ----------------------------------------------------

/// A client that speaks bytes; responses are decoded with ringmq's codec.
pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send_packet(&mut self, p: &Packet) {
        let mut b = BytesMut::new();
        protocol::encode(p, &mut b);
        self.send(&b);
    }

    /// CONNECT as MQTT 3.1.1 and expect CONNACK; returns session present.
    pub fn mqtt_connect(&mut self, client_id: &str, clean: bool, keep_alive_s: u16) -> bool {
        self.send_packet(&connect_packet(client_id, clean, keep_alive_s, None));
        match self.recv(Duration::from_secs(5)) {
            Some(Packet::ConnAck(a)) => {
                assert_eq!(a.code, protocol::ConnectReturnCode::Accepted);
                a.session_present
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// The next packet, or None after `timeout` or if the connection closed.
    pub fn recv(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            match protocol::decode(&mut self.buf, None, 1 << 28) {
                Ok(Some(p)) => return Some(p),
                Ok(None) => {}
                Err(e) => panic!("broker sent undecodable bytes: {e}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// The raw bytes that arrive within `timeout` (until close or timeout).
    pub fn recv_bytes(&mut self, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        let mut out = self.buf.split().to_vec();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return out,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// True if the broker closes the connection within `timeout` (any
    /// packets sent before the close are discarded).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}

pub fn connect_packet(
    client_id: &str,
    clean: bool,
    keep_alive_s: u16,
    will: Option<protocol::Will>,
) -> Packet {
    Packet::Connect(Box::new(protocol::Connect {
        version: protocol::ProtocolVersion::V311,
        clean_session: clean,
        keep_alive_s,
        client_id: client_id.into(),
        will,
        username: None,
        password: None,
        properties: None,
    }))
}

pub fn subscribe_packet(packet_id: u16, filter: &str, qos: protocol::QoS) -> Packet {
    Packet::Subscribe(protocol::Subscribe {
        packet_id,
        filters: vec![protocol::SubscribeFilter {
            filter: filter.into(),
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }],
        properties: None,
    })
}

pub fn publish_packet(
    topic: &str,
    payload: &[u8],
    qos: protocol::QoS,
    packet_id: u16,
    retain: bool,
) -> Packet {
    Packet::Publish(protocol::Publish {
        dup: false,
        qos,
        retain,
        topic: topic.into(),
        packet_id,
        payload: bytes::Bytes::copy_from_slice(payload),
        properties: None,
    })
}

// ----- rumqttc client ----------------------------------------------------------

pub use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

/// A rumqttc client whose event loop runs in a task; events arrive on `rx`.
pub struct Client {
    pub client: AsyncClient,
    pub rx: tokio::sync::mpsc::UnboundedReceiver<Result<Event, String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn options(port: u16, id: &str, clean: bool) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_session(clean);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

impl Client {
    /// Connects and waits for CONNACK; returns the client and session present.
    pub async fn connect(port: u16, id: &str, clean: bool) -> (Client, bool) {
        Self::connect_with(options(port, id, clean)).await
    }

    pub async fn connect_with(opts: MqttOptions) -> (Client, bool) {
        let (client, mut el) = AsyncClient::new(opts, 1000);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(ev) => {
                        if tx.send(Ok(ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        let mut c = Client { client, rx, task };
        let present = loop {
            match c.next(Duration::from_secs(5)).await {
                Some(Ok(Event::Incoming(Incoming::ConnAck(a)))) => break a.session_present,
                Some(Ok(_)) => {}
                other => panic!("no CONNACK: {other:?}"),
            }
        };
        (c, present)
    }

    pub async fn next(&mut self, timeout: Duration) -> Option<Result<Event, String>> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Subscribes and waits for the SUBACK; returns its return codes.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap();
        loop {
            match self.next(Duration::from_secs(5)).await {
                Some(Ok(Event::Incoming(Incoming::SubAck(s)))) => return s.return_codes,
                Some(Ok(_)) => {}
                other => panic!("no SUBACK: {other:?}"),
            }
        }
    }

    /// The next PUBLISH within `timeout`.
    pub async fn publish_within(&mut self, timeout: Duration) -> Option<rumqttc::Publish> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Ok(Event::Incoming(Incoming::Publish(p)))) => return Some(p),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    }

    /// Collects PUBLISHes until `n` arrived or `timeout` passed.
    pub async fn publishes(&mut self, n: usize, timeout: Duration) -> Vec<rumqttc::Publish> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.publish_within(left).await {
                Some(p) => out.push(p),
                None => break,
            }
        }
        out
    }

    /// Sends DISCONNECT and waits until the event loop has sent it.
    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) | Some(Err(_)) | None => {
                    return;
                }
                Some(Ok(_)) => {}
            }
        }
    }
}
