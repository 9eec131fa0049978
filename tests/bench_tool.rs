//! `ringmq-bench` against the broker: the counters and the sequence tracker
//! agree with what was sent (small, bounded runs).

mod common;
use common::Broker;
use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmq-bench"))
        .args(args)
        .arg("--json")
        .arg("--quiet")
        .output()
        .expect("run ringmq-bench");
    assert!(
        out.status.success(),
        "ringmq-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json summary")
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
fn conn_holds_connections() {
    let b = Broker::start(&["--cores", "2"]);
    let port = b.port.to_string();
    let r = bench(&[
        "conn",
        "-p",
        &port,
        "-c",
        "50",
        "-R",
        "500",
        "--duration",
        "2",
    ]);
    assert_eq!(r["totals"]["connect_succ"], 50);
    assert_eq!(r["totals"]["connect_fail"], 0);
}

#[test]
fn unreachable_broker_counts_connect_failures() {
    // A port nothing listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = bench(&[
        "conn",
        "-p",
        &port.to_string(),
        "-c",
        "3",
        "-i",
        "1",
        "--duration",
        "2",
    ]);
    assert_eq!(r["totals"]["connect_fail"], 3);
    assert_eq!(r["totals"]["connect_succ"], 0);
}
