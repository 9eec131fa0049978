//! `ringmq-bench` against the broker: the counters and the sequence tracker
//! agree with what was sent (small, bounded runs). TLS, WebSocket and MQTT 5
//! run against `ringmq-bench sink`, which speaks them all (the test
//! certificates are in certs/).

mod common;
use common::Broker;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `ringmq-bench ARGS --json --quiet`: exit status, summary (Null when
/// none was printed) and stderr.
fn bench_full(args: &[&str]) -> (ExitStatus, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmq-bench"))
        .args(args)
        .arg("--json")
        .arg("--quiet")
        .output()
        .expect("run ringmq-bench");
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status,
        summary,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bench(args: &[&str]) -> Value {
    let (status, summary, stderr) = bench_full(args);
    assert!(status.success(), "ringmq-bench failed: {stderr}");
    assert!(summary.is_object(), "no JSON summary; stderr: {stderr}");
    summary
}

fn cert(name: &str) -> String {
    format!("{}/certs/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `ringmq-bench sink --listen 127.0.0.1:0 --json ARGS` on a free port.
struct Sink {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Sink {
    fn start(args: &[&str]) -> Sink {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq-bench"))
            .args(["sink", "--listen", "127.0.0.1:0", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sink");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("sink listening on 127.0.0.1:") {
                    let _ = tx.send(port.trim().parse::<u16>().expect("port"));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                panic!("sink did not start: {}", lines.lock().unwrap().join("\n"));
            }
        };
        Sink {
            child,
            port,
            stderr: lines,
        }
    }

    /// Waits for the sink's `--duration` to end: its summary and stderr.
    fn finish(mut self) -> (Value, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "sink did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            s.read_to_string(&mut out).expect("sink stdout");
        }
        let err = self.stderr.lock().unwrap().join("\n");
        let summary = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("sink summary {out:?}: {e}; stderr: {err}"));
        (summary, err)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pub_and_sub_counts_agree_with_no_loss() {
    let b = Broker::start(&["--cores", "2"]);
    let port = b.port.to_string();
    let sub = std::thread::spawn({
        let port = port.clone();
        move || {
            bench(&[
                "sub",
                "-p",
                &port,
                "-c",
                "4",
                "-t",
                "bt/#",
                "-q",
                "1",
                "--duration",
                "6",
            ])
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let publ = bench(&[
        "pub",
        "-p",
        &port,
        "-c",
        "4",
        "-t",
        "bt/%i",
        "-q",
        "1",
        "-I",
        "5",
        "-s",
        "32",
        "-L",
        "400",
        "--duration",
        "4",
    ]);
    let sub = sub.join().unwrap();
    assert_eq!(publ["totals"]["pub"], 400);
    assert_eq!(
        publ["totals"]["pub_succ"], 400,
        "every QoS 1 publish acknowledged"
    );
    assert_eq!(publ["totals"]["connect_succ"], 4);
    // 4 subscribers on bt/# each see all 400 messages.
    assert_eq!(sub["totals"]["recv"], 1600);
    assert_eq!(sub["unique"], 1600);
    assert_eq!(sub["lost"], 0);
    assert_eq!(sub["duplicated"], 0);
    assert_eq!(sub["out_of_order"], 0);
    assert!(sub["latency_us"]["p50"].as_u64().unwrap() > 0);
}

#[test]
fn mqtt5_through_the_broker_with_outgoing_topic_aliases() {
    let b = Broker::start(&["--cores", "2"]);
    let port = b.port.to_string();
    let sub = std::thread::spawn({
        let port = port.clone();
        move || {
            bench(&[
                "sub",
                "-V",
                "5",
                "--topic-alias-maximum",
                "4",
                "-p",
                &port,
                "-c",
                "3",
                "-t",
                "alias/#",
                "-q",
                "1",
                "--duration",
                "6",
            ])
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let publ = bench(&[
        "pub",
        "-V",
        "5",
        "-p",
        &port,
        "-c",
        "2",
        "-t",
        "alias/%i",
        "-q",
        "1",
        "-I",
        "5",
        "-s",
        "32",
        "-L",
        "300",
        "--duration",
        "4",
    ]);
    let sub = sub.join().unwrap();
    assert_eq!(publ["totals"]["pub_succ"], 300);
    assert_eq!(sub["totals"]["recv"], 900);
    assert_eq!(sub["lost"], 0);
    // Two topics per subscriber: each is sent in full once, then by alias.
    assert_eq!(sub["totals"]["recv_aliased"], 900 - 3 * 2);
}

/// `ringmq-bench conn -p PORT EXTRA... --duration 2`.
fn conn(port: u16, extra: &[&str]) -> Value {
    let port = port.to_string();
    let mut args = vec!["conn", "-p", &port];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--duration", "2"]);
    bench(&args)
}

#[test]
fn conn_holds_connections() {
    let b = Broker::start(&["--cores", "2"]);
    let r = conn(b.port, &["-c", "50", "-R", "500"]);
    assert_eq!(r["totals"]["connect_succ"], 50);
    assert_eq!(r["totals"]["connect_fail"], 0);
}

/// `--ifaddr`: connections come from each listed local address in turn
/// (the port chosen at connect, for the whole address pair).
#[test]
fn conn_spreads_over_local_addresses() {
    let b = Broker::start(&["--cores", "1"]);
    let r = conn(
        b.port,
        &["-c", "40", "-R", "400", "--ifaddr", "127.0.0.2,127.0.0.3"],
    );
    assert_eq!(r["totals"]["connect_succ"], 40);
    let logs = b.logs();
    for addr in ["127.0.0.2", "127.0.0.3"] {
        let n = logs.matches(&format!(" from {addr}:")).count();
        assert_eq!(n, 20, "connections from {addr}:\n{logs}");
    }
    assert!(!logs.contains(" from 127.0.0.1:"), "{logs}");
}

#[test]
fn unreachable_broker_counts_connect_failures() {
    // A port nothing listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = conn(port, &["-c", "3", "-i", "1"]);
    assert_eq!(r["totals"]["connect_fail"], 3);
    assert_eq!(r["totals"]["connect_succ"], 0);
}

/// `pub` flags shared by the transport tests: 2 clients publishing as fast
/// as the window allows, for at most 3 s.
fn pub_args<'a>(port: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "pub",
        "-p",
        port,
        "-c",
        "2",
        "-t",
        "bt/%i",
        "-I",
        "0",
        "--duration",
        "3",
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn pub_over_tls_with_and_without_verification() {
    let (server_pem, server_key) = (cert("server.pem"), cert("server.key"));
    let sink = Sink::start(&[
        "-S",
        "--certfile",
        &server_pem,
        "--keyfile",
        &server_key,
        "--duration",
        "4",
    ]);
    let port = sink.port.to_string();
    // Like emqtt_bench: -S alone does not verify the (here CA-signed, but
    // unknown to the client) server certificate.
    let r = bench(&pub_args(&port, &["-S", "-L", "300"]));
    assert_eq!(r["totals"]["connect_succ"], 2);
    assert_eq!(r["totals"]["pub"], 300);
    // Verified: chain to the test CA, and 127.0.0.1 in subjectAltName. Big
    // payloads so that one flush spans several TLS records.
    let (ca, other_ca) = (cert("ca.pem"), cert("other-ca.pem"));
    let r = bench(&pub_args(
        &port,
        &["-S", "--cacertfile", &ca, "-L", "200", "-s", "40000"],
    ));
    assert_eq!(r["totals"]["connect_succ"], 2);
    assert_eq!(r["totals"]["pub"], 200);
    // The wrong CA: every connect fails and says why.
    let (status, r, err) = bench_full(&pub_args(
        &port,
        &["-S", "--cacertfile", &other_ca, "-L", "100"],
    ));
    assert!(status.success(), "{err}");
    assert_eq!(r["totals"]["connect_fail"], 2, "{err}");
    assert_eq!(r["totals"]["connect_succ"], 0);
    assert!(
        err.contains("TLS handshake: invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    let (s, err) = sink.finish();
    assert_eq!(s["publishes"], 500, "{err}");
    assert_eq!(s["connections"], 4);
    // The refusing client told the server why (a TLS alert).
    assert_eq!(s["failed"], 2);
    assert!(err.contains("UnknownCA"), "{err}");
}

#[test]
fn tls_flags_are_checked_before_connecting() {
    let (status, _, err) = bench_full(&pub_args(
        "1",
        &["-S", "--cacertfile", "/nonexistent/ca.pem", "-L", "1"],
    ));
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    let client_pem = cert("client.pem");
    let (status, _, err) = bench_full(&pub_args("1", &["-S", "--certfile", &client_pem]));
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--certfile needs --keyfile"), "{err}");
    let (status, _, err) = bench_full(&pub_args("1", &["--ws", "--ws-path", "mqtt"]));
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--ws-path"), "{err}");
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let (server_pem, server_key, ca) = (cert("server.pem"), cert("server.key"), cert("ca.pem"));
    let sink = Sink::start(&[
        "-S",
        "--certfile",
        &server_pem,
        "--keyfile",
        &server_key,
        "--cacertfile",
        &ca,
        "--ack",
        "--duration",
        "4",
    ]);
    let port = sink.port.to_string();
    let (client_pem, client_key) = (cert("client.pem"), cert("client.key"));
    let r = bench(&pub_args(
        &port,
        &[
            "-S",
            "--cacertfile",
            &ca,
            "--certfile",
            &client_pem,
            "--keyfile",
            &client_key,
            "-q",
            "1",
            "-F",
            "8",
            "-L",
            "200",
        ],
    ));
    assert_eq!(r["totals"]["connect_succ"], 2);
    assert_eq!(
        r["totals"]["pub_succ"], 200,
        "every QoS 1 publish acknowledged"
    );
    // Without a client certificate the server ends the handshake.
    let (status, r, err) = bench_full(&pub_args(&port, &["-S", "--cacertfile", &ca, "-L", "10"]));
    assert!(status.success(), "{err}");
    assert_eq!(r["totals"]["connect_fail"], 2, "{err}");
    assert!(err.contains("CertificateRequired"), "{err}");
    let (s, err) = sink.finish();
    assert_eq!(s["publishes"], 200, "{err}");
    assert_eq!(s["failed"], 2);
    assert!(err.contains("peer sent no certificates"), "{err}");
}

#[test]
fn pub_over_websocket_into_sink() {
    let sink = Sink::start(&["--ws", "--ack", "--duration", "4"]);
    let port = sink.port.to_string();
    let r = bench(&pub_args(
        &port,
        &["--ws", "-q", "1", "-F", "8", "-L", "300"],
    ));
    assert_eq!(r["totals"]["connect_succ"], 2);
    assert_eq!(r["totals"]["pub_succ"], 300);
    // Payloads over 64 KiB: frames with a 64-bit length.
    let r = bench(&pub_args(&port, &["--ws", "-s", "70000", "-L", "6"]));
    assert_eq!(r["totals"]["pub"], 6);
    // The sink serves /mqtt only.
    let (status, r, err) = bench_full(&pub_args(
        &port,
        &["--ws", "--ws-path", "/other", "-L", "1"],
    ));
    assert!(status.success(), "{err}");
    assert_eq!(r["totals"]["connect_fail"], 2);
    assert!(err.contains("HTTP 404"), "{err}");
    let (s, err) = sink.finish();
    assert_eq!(s["publishes"], 306, "{err}");
    assert_eq!(s["connections"], 4);
}

#[test]
fn pub_over_secure_websocket_into_sink() {
    let (server_pem, server_key, ca) = (cert("server.pem"), cert("server.key"), cert("ca.pem"));
    let sink = Sink::start(&[
        "-S",
        "--certfile",
        &server_pem,
        "--keyfile",
        &server_key,
        "--ws",
        "--ws-path",
        "/ws",
        "--duration",
        "4",
    ]);
    let port = sink.port.to_string();
    let r = bench(&pub_args(
        &port,
        &[
            "-S",
            "--cacertfile",
            &ca,
            "--ws",
            "--ws-path",
            "/ws",
            "-L",
            "2000",
        ],
    ));
    assert_eq!(r["totals"]["connect_succ"], 2);
    assert_eq!(r["totals"]["pub"], 2000);
    let (s, err) = sink.finish();
    assert_eq!(s["publishes"], 2000, "{err}");
    assert_eq!(s["failed"], 0, "{err}");
}

#[test]
fn mqtt5_pub_and_sub_into_sink() {
    // --ack: the sink decodes everything as MQTT 5 and acknowledges with
    // reason 0x10 (No matching subscribers), as a broker does.
    let sink = Sink::start(&["--ack", "--duration", "4"]);
    let port = sink.port.to_string();
    fn v5<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["-V", "5", "-x", "120"];
        a.extend_from_slice(extra);
        a
    }
    let r = bench(&pub_args(&port, &v5(&["-q", "1", "-F", "8", "-L", "400"])));
    assert_eq!(r["totals"]["pub_succ"], 400);
    assert_eq!(r["totals"]["pub_fail"], 0);
    let r = bench(&pub_args(&port, &v5(&["-q", "2", "-F", "8", "-L", "200"])));
    assert_eq!(r["totals"]["pub_succ"], 200, "QoS 2 flows complete");
    let r = bench(&pub_args(&port, &v5(&["-L", "300"])));
    assert_eq!(r["totals"]["pub"], 300);
    let r = bench(&[
        "sub",
        "-p",
        &port,
        "-V",
        "5",
        "-c",
        "3",
        "-t",
        "bt/#",
        "-q",
        "1",
        "--duration",
        "1",
    ]);
    assert_eq!(r["totals"]["sub"], 3);
    assert_eq!(r["totals"]["connect_succ"], 3);
    let (s, err) = sink.finish();
    assert_eq!(s["publishes"], 900, "{err}");
    assert_eq!(s["connections_v5"], 9);
    assert_eq!(s["failed"], 0, "no undecodable MQTT 5 packet: {err}");
}
