#!/usr/bin/env python3
"""Side-by-side MQTT broker benchmark: ringmq against mosquitto, rumqttd,
aedes (and EMQX / NanoMQ when their binaries are on PATH), one broker at a
time, the same scenarios driven by ringmq-bench, on 127.0.0.1 only.

For every (broker, scenario) it records the deliveries the subscribers
counted, the broker's CPU seconds over the run (utime + stime of the broker
process tree from /proc), its peak RSS, latency percentiles and losses, and
writes results.csv, results.md, PNG charts and PERFORMANCE.md.

Usage: bench-scripts/run.sh [--quick] [--only SCENARIO,...] [--brokers NAME,...]
(run.sh installs the peers, builds ringmq in release mode, then calls this).
"""

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
HOST = "127.0.0.1"

# Limits every broker gets where it has the knob: 32 in flight, 1000 queued.
INFLIGHT = 32
QUEUED = 1000


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----- process accounting ---------------------------------------------------

def proc_tree(pid):
    """pid and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(parts[1]), []).append(int(d))
        except (OSError, IndexError):
            pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid):
    total = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            total += int(parts[11]) + int(parts[12])
        except (OSError, IndexError):
            pass
    return total / CLK_TCK


# Connects per second the idle-connections scenario asks for.
IDLE_CONNECT_RATE = 20000
# Local addresses the idle clients connect from, round robin. From one
# address, past ~10k connections to one broker port the kernel's search for
# a free source port slowed the tool's connects to ~2k/s whichever broker it
# measured (see PERFORMANCE.md); spread over eight, each holds a few thousand.
IDLE_IFADDRS = ",".join(f"127.0.0.{i}" for i in range(1, 9))

def rss_kib(pid):
    total = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_KIB
        except (OSError, IndexError):
            pass
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, False

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.2)


# ----- brokers --------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Broker:
    """A broker under test: name, how to start it on a port, its version."""

    def __init__(self, name, argv_fn, version, note=""):
        self.name, self.argv_fn, self.version, self.note = name, argv_fn, version, note
        self.proc = None

    def start(self, tmp):
        self.port = free_port()
        argv = self.argv_fn(self.port, tmp)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=raise_nofile)
        if not wait_port(self.port):
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {' '.join(argv)}")
        time.sleep(0.3)
        return self.port

    def stop(self):
        if self.proc and self.proc.poll() is None:
            for p in reversed(proc_tree(self.proc.pid)):
                try:
                    os.kill(p, signal.SIGTERM)
                except OSError:
                    pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                for p in proc_tree(self.proc.pid):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                self.proc.wait()
        self.proc = None


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cmd_version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (out.stdout + out.stderr).strip().splitlines()
        return text[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def make_brokers(peers, ringmq_bin, cores, baseline=None, baseline_name="ringmq-baseline"):
    brokers = []

    def ringmq(n):
        return lambda port, tmp: [ringmq_bin, "--listen", f"{HOST}:{port}", "--cores", str(n),
                                  "--log-level", "error", "--max-inflight", str(INFLIGHT),
                                  "--max-queued-messages", str(QUEUED), "--sys-interval", "0"]

    ver = cmd_version([ringmq_bin, "--version"])
    brokers.append(Broker("ringmq", ringmq(cores), ver, f"--cores {cores}"))
    if cores > 1:
        brokers.append(Broker("ringmq-1core", ringmq(1), ver, "--cores 1"))
    # Other builds of ringmq (or wrappers adding flags) under the same flags:
    # before/after checks. Comma-separated paths and names.
    names = baseline_name.split(",") if baseline else []
    for i, path in enumerate(baseline.split(",") if baseline else []):
        name = names[i] if i < len(names) else f"{names[0]}{i + 1}"
        def base(port, tmp, n=cores, path=path):
            return [path] + ringmq(n)(port, tmp)[1:]
        brokers.append(Broker(name, base, cmd_version([path, "--version"]),
                              f"--cores {cores}, binary {path}"))

    mosq = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if mosq:
        def mosquitto(port, tmp):
            conf = os.path.join(tmp, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write(f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n"
                        f"max_inflight_messages {INFLIGHT}\nmax_queued_messages {QUEUED}\n"
                        "log_type none\nuser root\n")
            return [mosq, "-c", conf]
        brokers.append(Broker("mosquitto", mosquitto, cmd_version([mosq, "-h"]), "persistence false"))
    else:
        log("mosquitto not found (apt-get install mosquitto): skipped")

    rumqttd = os.path.join(peers, "rumqttd", "bin", "rumqttd")
    if os.path.exists(rumqttd):
        def rumq(port, tmp):
            conf = os.path.join(tmp, "rumqttd.toml")
            with open(conf, "w") as f:
                f.write(f"""id = 0
[router]
id = 0
max_connections = 100010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "{HOST}:{port}"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = {INFLIGHT}
    dynamic_filters = true
""")
            return [rumqttd, "-c", conf, "-q"]
        brokers.append(Broker("rumqttd", rumq, cmd_version([rumqttd, "--version"]), "next_connection_delay_ms 0"))
    else:
        log(f"rumqttd not found at {rumqttd} (run.sh installs it): skipped")

    aedes_dir = os.path.join(peers, "aedes")
    if os.path.exists(os.path.join(aedes_dir, "node_modules", "aedes")):
        def aedes(port, tmp):
            script = os.path.join(tmp, "aedes.js")
            with open(script, "w") as f:
                f.write("const aedes = require('aedes')();\n"
                        f"require('net').createServer(aedes.handle).listen({port}, '{HOST}');\n")
            return ["node", script]
        try:
            with open(os.path.join(aedes_dir, "node_modules", "aedes", "package.json")) as f:
                ver = "aedes " + json.load(f)["version"]
        except OSError:
            ver = "aedes ?"
        brokers.append(Broker("aedes", lambda p, t: aedes(p, t), ver, "in-memory persistence"))
        os.environ["NODE_PATH"] = os.path.join(aedes_dir, "node_modules")
    else:
        log("aedes not installed (run.sh installs it with npm): skipped")

    emqx = shutil.which("emqx")
    if emqx:
        brokers.append(Broker("emqx", lambda p, t: [emqx, "foreground"], cmd_version([emqx, "version"]),
                              "listens on its configured port"))
    else:
        log("emqx not on PATH: skipped (EMQX has no Debian/PyPI/npm package)")
    nanomq = shutil.which("nanomq")
    if nanomq:
        brokers.append(Broker("nanomq", lambda p, t: [nanomq, "start", "--url", f"nmq-tcp://{HOST}:{p}"],
                              cmd_version([nanomq, "--version"])))
    else:
        log("nanomq not on PATH: skipped")
    return brokers


# ----- scenarios ------------------------------------------------------------

class Scenario:
    def __init__(self, name, title, sub=None, pub=None, conn=None, fanout=1, seconds=8,
                 kind="flow", check_loss=False):
        self.name, self.title = name, title
        self.sub, self.pub, self.conn = sub, pub, conn
        self.fanout, self.seconds, self.kind, self.check_loss = fanout, seconds, kind, check_loss


# A topic as long as the ones IoT fleets use: where topic aliases pay.
LONG_TOPIC = "fleet/eu-west-1/building-17/floor-03/room-042/sensor/temperature"


def scenarios(quick, nofile):
    s = 4 if quick else 8
    idle = min(nofile - 1000, 100_000)
    if quick:
        idle = min(idle, 5000)
    return [
        Scenario("tool_qos0_rate", "Load generator alone: 1 publisher, 1 core, QoS 0 64 B into a socket that only reads",
                 pub=["-c", "1", "-t", "t/1", "-q", "0", "-I", "0", "-s", "64", "--cores", "1"],
                 seconds=s, kind="tool"),
        Scenario("qos0_fanin", "QoS 0 fan-in: 100 publishers -> 1 subscriber on t/#",
                 sub=["-c", "1", "-t", "t/#", "-q", "0"],
                 pub=["-c", "100", "-t", "t/%i", "-q", "0", "-I", "0", "-s", "64"], seconds=s),
        Scenario("qos1_fanin", "QoS 1 fan-in: 100 publishers -> 1 subscriber on t/#",
                 sub=["-c", "1", "-t", "t/#", "-q", "1"],
                 pub=["-c", "100", "-t", "t/%i", "-q", "1", "-I", "0", "-F", str(INFLIGHT), "-s", "64"],
                 seconds=s, check_loss=True),
        Scenario("qos1_pairs", "QoS 1 pairs: 100 publishers -> 100 subscribers, one topic each",
                 sub=["-c", "100", "-t", "p/%i", "-q", "1"],
                 pub=["-c", "100", "-t", "p/%i", "-q", "1", "-I", "0", "-F", str(INFLIGHT), "-s", "64"],
                 seconds=s, check_loss=True),
        Scenario("qos0_fanout", "QoS 0 fan-out: 1 publisher -> 1000 subscribers, 1000 msg/s (1M deliveries/s offered)",
                 sub=["-c", "1000", "-t", "f/x", "-q", "0"],
                 pub=["-c", "1", "-t", "f/x", "-q", "0", "-I", "1", "-s", "64"], fanout=1000, seconds=s),
        Scenario("qos0_fanout_v5", "MQTT 5 QoS 0 fan-out, 60-byte topic: 1 publisher -> 1000 v5 subscribers, 1000 msg/s",
                 sub=["-V", "5", "-c", "1000", "-t", LONG_TOPIC, "-q", "0"],
                 pub=["-V", "5", "-c", "1", "-t", LONG_TOPIC, "-q", "0", "-I", "1", "-s", "64"],
                 fanout=1000, seconds=s),
        Scenario("qos0_fanout_v5_alias", "The same with outgoing topic aliases (subscribers announce Topic Alias Maximum 16)",
                 sub=["-V", "5", "--topic-alias-maximum", "16", "-c", "1000", "-t", LONG_TOPIC, "-q", "0"],
                 pub=["-V", "5", "-c", "1", "-t", LONG_TOPIC, "-q", "0", "-I", "1", "-s", "64"],
                 fanout=1000, seconds=s),
        Scenario("qos1_pairs_1k", "QoS 1 pairs, 1 KiB payload: 100 pairs",
                 sub=["-c", "100", "-t", "k/%i", "-q", "1"],
                 pub=["-c", "100", "-t", "k/%i", "-q", "1", "-I", "0", "-F", str(INFLIGHT), "-s", "1024"],
                 seconds=s, check_loss=True),
        Scenario("latency_qos1", "Latency at fixed load: 100 QoS 1 pairs x 100 msg/s (10k msg/s)",
                 sub=["-c", "100", "-t", "l/%i", "-q", "1"],
                 pub=["-c", "100", "-t", "l/%i", "-q", "1", "-I", "10", "-F", str(INFLIGHT), "-s", "64"],
                 seconds=s, check_loss=True),
        Scenario("idle_conns", f"Idle connections: {idle} clients held, connect rate and RSS per connection",
                 conn=["-c", str(idle), "-R", str(IDLE_CONNECT_RATE), "-k", "300", "--ifaddr", IDLE_IFADDRS],
                 seconds=0, kind="conn"),
        Scenario("reconnect_storm", "Reconnect storm: 10k persistent sessions reconnect at once",
                 conn=["-c", str(2000 if quick else 10000), "-i", "0", "-C", "false", "-k", "300"],
                 seconds=0, kind="storm"),
    ]


def bench(bench_bin, mode, port, args, duration, prefix):
    argv = [bench_bin, mode, "-p", str(port), "--json", "--quiet", "--duration", str(duration),
            "--prefix", prefix] + args
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=raise_nofile)


def collect(proc, timeout):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"ringmq-bench gave no summary: {err[-500:]}")


def run_flow(broker, sc, bench_bin, tmp):
    port = broker.start(tmp)
    try:
        pid = broker.proc.pid
        sampler = RssSampler(pid)
        sampler.start()
        connect_s = 2 + -(-int(sc.sub[1]) // 1000)
        sub = bench(bench_bin, "sub", port, sc.sub + ["-R", "2000"], sc.seconds + connect_s + 3, "s")
        time.sleep(connect_s)
        cpu0, t0 = cpu_seconds(pid), time.time()
        pub = bench(bench_bin, "pub", port, sc.pub + ["-R", "2000"], sc.seconds, "p")
        p = collect(pub, sc.seconds + 30)
        s = collect(sub, sc.seconds + connect_s + 30)
        cpu1, t1 = cpu_seconds(pid), time.time()
        sampler.stop = True
        sent = p["totals"]["pub"]
        recv = s["totals"]["recv"]
        expected = sent * sc.fanout
        lat = s.get("latency_us") or {}
        cpu = max(cpu1 - cpu0, 1e-6)
        return {
            "deliveries": recv,
            "deliveries_per_s": recv / max(p["elapsed_s"], 1e-6),
            "broker_cpu_s": round(cpu, 3),
            "deliveries_per_cpu_s": recv / cpu,
            "sent": sent,
            "lost": max(expected - s["unique"], 0) if sc.fanout == 1 else max(expected - recv, 0),
            "lost_pct": 100.0 * max(expected - s["unique"], 0) / max(expected, 1) if sc.fanout == 1
            else 100.0 * max(expected - recv, 0) / max(expected, 1),
            "duplicated": s["duplicated"],
            "p50_us": lat.get("p50"), "p99_us": lat.get("p99"), "max_us": lat.get("max"),
            "rss_peak_mib": round(sampler.peak / 1024, 1),
            "wall_s": round(t1 - t0, 2),
        }
    finally:
        broker.stop()


def run_tool(sc, bench_bin):
    """ringmq-bench pub into `ringmq-bench sink`: what the generator offers."""
    port = free_port()
    sink = subprocess.Popen([bench_bin, "sink", "--listen", f"{HOST}:{port}", "--duration", str(sc.seconds + 3),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wait_port(port)
    p = collect(bench(bench_bin, "pub", port, sc.pub, sc.seconds, "tool"), sc.seconds + 30)
    s = collect(sink, sc.seconds + 30)
    return {"publishes_per_s": p["totals"]["pub"] / max(p["elapsed_s"], 1e-6), "sink_frames_per_s": s["rate"],
            "sent": p["totals"]["pub"]}


def run_conn(broker, sc, bench_bin, tmp):
    port = broker.start(tmp)
    try:
        pid = broker.proc.pid
        n = int(sc.conn[1])
        rss0 = rss_kib(pid)
        cpu0 = cpu_seconds(pid)
        hold = 4
        proc = bench(bench_bin, "conn", port, sc.conn, int(n / IDLE_CONNECT_RATE) + hold + 4, "c")
        # Sample RSS while the connections are held (before the tool disconnects).
        peak = 0
        deadline = time.time() + n / IDLE_CONNECT_RATE + hold + 3
        while time.time() < deadline and proc.poll() is None:
            peak = max(peak, rss_kib(pid))
            time.sleep(0.25)
        r = collect(proc, 60)
        ok = r["totals"]["connect_succ"]
        done_s = r.get("connect_done_s") or r["elapsed_s"]
        cpu = cpu_seconds(pid) - cpu0
        return {
            "connections": ok,
            "connect_fail": r["totals"]["connect_fail"],
            "connect_rate": ok / max(done_s, 1e-6),
            "rss_peak_mib": round(peak / 1024, 1),
            "rss_per_conn_kib": round((peak - rss0) / max(ok, 1), 2),
            "broker_cpu_s": round(cpu, 3),
            "connects_per_cpu_s": ok / max(cpu, 1e-6),
        }
    finally:
        broker.stop()


def run_storm(broker, sc, bench_bin, tmp):
    port = broker.start(tmp)
    try:
        pid = broker.proc.pid
        n = int(sc.conn[1])
        # First connection creates the persistent sessions; the tool then disconnects.
        collect(bench(bench_bin, "conn", port, sc.conn, 6, "storm"), 60)
        cpu0 = cpu_seconds(pid)
        r = collect(bench(bench_bin, "conn", port, sc.conn, 6, "storm"), 60)
        ok = r["totals"]["connect_succ"]
        done_s = r.get("connect_done_s") or r["elapsed_s"]
        cpu = cpu_seconds(pid) - cpu0
        return {
            "connections": ok,
            "connect_fail": r["totals"]["connect_fail"],
            "connect_rate": ok / max(done_s, 1e-6),
            "reconnect_all_s": round(done_s, 2),
            "broker_cpu_s": round(cpu, 3),
            "connects_per_cpu_s": ok / max(cpu, 1e-6),
            "rss_peak_mib": round(rss_kib(pid) / 1024, 1),
        }
    finally:
        broker.stop()


# ----- reporting ------------------------------------------------------------

def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


FLOW_COLS = ["deliveries_per_s", "deliveries_per_cpu_s", "broker_cpu_s", "lost_pct", "p50_us", "p99_us",
             "rss_peak_mib"]
CONN_COLS = ["connections", "connect_rate", "rss_per_conn_kib", "rss_peak_mib", "connects_per_cpu_s"]
STORM_COLS = ["connections", "reconnect_all_s", "connect_rate", "connects_per_cpu_s", "rss_peak_mib"]
TOOL_COLS = ["publishes_per_s", "sink_frames_per_s", "sent"]


def markdown(results, scs, brokers):
    lines = []
    for sc in scs:
        rows = [r for r in results if r["scenario"] == sc.name]
        if not rows:
            continue
        cols = {"flow": FLOW_COLS, "conn": CONN_COLS, "storm": STORM_COLS, "tool": TOOL_COLS}[sc.kind]
        if sc.kind == "tool":
            lines.append(f"### {sc.title}\n")
            lines.append("| | " + " | ".join(cols) + " |")
            lines.append("|---" * (len(cols) + 1) + "|")
            for r in rows:
                lines.append(f"| {r['broker']} | " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
            lines.append("")
            continue
        lines.append(f"### {sc.title}\n")
        key = {"flow": "deliveries_per_cpu_s", "conn": "connect_rate", "storm": "connect_rate"}[sc.kind]
        repeated = any(r.get("runs") for r in rows)
        extra = f" | {key} min..max (runs)" if repeated else ""
        lines.append("| broker | " + " | ".join(cols) + " | vs mosquitto | vs rumqttd" + extra + " |")
        lines.append("|---" * (len(cols) + 3 + repeated) + "|")
        base = {r["broker"]: r.get(key) for r in rows}
        for r in rows:
            def ratio(peer):
                b = base.get(peer)
                return f"{r[key] / b:.2f}x" if b and r.get(key) is not None else "-"
            spread = (f" | {fmt(r.get(key + '_min'))} .. {fmt(r.get(key + '_max'))} ({fmt(r.get('runs'))})"
                      if repeated else "")
            lines.append(f"| {r['broker']} | " + " | ".join(fmt(r.get(c)) for c in cols)
                         + f" | {ratio('mosquitto')} | {ratio('rumqttd')}{spread} |")
        lines.append(f"\nRatios compare `{key}`.\n")
    return "\n".join(lines)


def charts(results, scs, outdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (pip install matplotlib): no charts")
        return []
    made = []
    flow = [sc for sc in scs if sc.kind == "flow" and any(r["scenario"] == sc.name for r in results)]
    if flow:
        names = {sc.name for sc in flow}
        brokers = sorted({r["broker"] for r in results if r["scenario"] in names})
        fig, ax = plt.subplots(figsize=(11, 5))
        width = 0.8 / max(len(brokers), 1)
        for i, b in enumerate(brokers):
            vals = [next((r["deliveries_per_cpu_s"] for r in results if r["broker"] == b and r["scenario"] == sc.name), 0)
                    for sc in flow]
            ax.bar([x + i * width for x in range(len(flow))], vals, width, label=b)
        ax.set_xticks([x + width * (len(brokers) - 1) / 2 for x in range(len(flow))])
        ax.set_xticklabels([sc.name for sc in flow], rotation=15)
        ax.set_ylabel("deliveries per broker CPU-second")
        ax.set_yscale("log")
        ax.legend()
        ax.set_title("Deliveries per broker CPU-second (log scale)")
        fig.tight_layout()
        path = os.path.join(outdir, "deliveries_per_cpu_s.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)
    conn = [r for r in results if r["scenario"] == "idle_conns"]
    if conn:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar([r["broker"] for r in conn], [r["rss_per_conn_kib"] for r in conn])
        ax.set_ylabel("KiB of broker RSS per idle connection")
        ax.set_title("Memory per idle connection")
        fig.tight_layout()
        path = os.path.join(outdir, "rss_per_connection.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)
    return made


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "nofile_hard": __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)[1],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer connections")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--brokers", default="", help="comma-separated broker names")
    ap.add_argument("--peers", default=os.environ.get("PEERS_DIR", os.path.join(HERE, ".peers")))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--performance-md", default=os.path.join(ROOT, "PERFORMANCE.md"))
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: rewrite results.md, charts and PERFORMANCE.md from results.csv")
    ap.add_argument("--baseline", default="",
                    help="paths (comma-separated) of other ringmq binaries or wrapper scripts to run as more brokers (before/after checks)")
    ap.add_argument("--baseline-name", default="ringmq-baseline",
                    help="their names, comma-separated, in the same order")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every scenario N times, brokers interleaved, and keep each broker's "
                         "median run (by deliveries per broker CPU-second)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of scenarios not re-run from the existing results.csv "
                         "(every scenario's brokers still come from one run)")
    args = ap.parse_args()

    ringmq_bin = os.path.join(ROOT, "target", "release", "ringmq")
    bench_bin = os.path.join(ROOT, "target", "release", "ringmq-bench")
    for b in (ringmq_bin, bench_bin):
        if not os.path.exists(b):
            sys.exit(f"{b} missing: cargo build --release")
    m = machine()
    brokers = make_brokers(args.peers, ringmq_bin, args.cores, args.baseline or None, args.baseline_name)
    if args.brokers:
        wanted = set(args.brokers.split(","))
        brokers = [b for b in brokers if b.name in wanted]
    scs = scenarios(args.quick, m["nofile_hard"])
    if args.only:
        wanted = set(args.only.split(","))
        scs = [s for s in scs if s.name in wanted]
    os.makedirs(args.out, exist_ok=True)
    results = []
    if args.report_only:
        args.merge, scs_run = True, []
    else:
        scs_run = scs
    with tempfile.TemporaryDirectory() as tmp:
        for sc in scs_run:
            if sc.kind == "tool":
                log(f"== {sc.name}")
                r = run_tool(sc, bench_bin)
                r.update({"scenario": sc.name, "broker": "ringmq-bench -> sink"})
                log("   " + ", ".join(f"{k}={fmt(v)}" for k, v in r.items() if k not in ("scenario", "broker")))
                results.append(r)
                continue
            runs_of = {b.name: [] for b in brokers}
            for rep in range(args.repeat):
                for b in brokers:
                    log(f"== {sc.name} on {b.name}" + (f" (run {rep + 1}/{args.repeat})" if args.repeat > 1 else ""))
                    try:
                        run = {"flow": run_flow, "conn": run_conn, "storm": run_storm}[sc.kind]
                        r = run(b, sc, bench_bin, tmp)
                    except Exception as e:  # a broker that fails a scenario is reported, not fatal
                        log(f"   failed: {e}")
                        b.stop()
                        continue
                    r.update({"scenario": sc.name, "broker": b.name})
                    log("   " + ", ".join(f"{k}={fmt(v)}" for k, v in r.items() if k not in ("scenario", "broker")))
                    runs_of[b.name].append(r)
            for b in brokers:
                rs = runs_of[b.name]
                if not rs:
                    continue
                key = "deliveries_per_cpu_s" if "deliveries_per_cpu_s" in rs[0] else None
                if key and len(rs) > 1:
                    rs = sorted(rs, key=lambda r: r.get(key) or 0)
                    chosen = dict(rs[len(rs) // 2])
                    chosen["runs"] = len(rs)
                    chosen[key + "_min"] = rs[0].get(key)
                    chosen[key + "_max"] = rs[-1].get(key)
                    log(f"   {b.name}: median of {len(rs)} runs, {key} {fmt(rs[0].get(key))} .. {fmt(rs[-1].get(key))}")
                    results.append(chosen)
                else:
                    results.append(rs[0])
    csv_path = os.path.join(args.out, "results.csv")
    if args.merge and os.path.exists(csv_path):
        rerun = {sc.name for sc in scs_run}
        with open(csv_path) as f:
            old = [r for r in csv.DictReader(f) if r["scenario"] not in rerun]
        for r in old:
            for k, v in list(r.items()):
                try:
                    r[k] = float(v) if "." in v else int(v)
                except (TypeError, ValueError):
                    r[k] = v if v != "" else None
        results = old + results
        scs = scenarios(args.quick, m["nofile_hard"])
        rows = {(r["scenario"], r["broker"]) for r in results}
        scs = [s for s in scs if any(k[0] == s.name for k in rows)]
        with open(os.path.join(args.out, "machine.json")) as f:
            prev = json.load(f)
        runs = prev.get("runs", [prev.get("command", "")])
    else:
        runs = []
    if scs_run:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "?"
        runs.append("bench-scripts/bench.py " + " ".join(sys.argv[1:])
                    + f"  ({m['date']}, commit {commit}: {', '.join(sc.name for sc in scs_run)})")
    keys = sorted({k for r in results for k in r})
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["scenario", "broker"] + [k for k in keys if k not in ("scenario", "broker")])
        w.writeheader()
        w.writerows(results)
    table = markdown(results, scs, brokers)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    pngs = charts(results, scs, args.out)
    with open(os.path.join(args.out, "machine.json"), "w") as f:
        json.dump({"machine": m, "brokers": {b.name: {"version": b.version, "note": b.note} for b in brokers},
                   "command": " ".join(sys.argv), "runs": runs}, f, indent=1)
    write_performance_md(args, m, brokers, table, pngs, runs)
    log(f"results in {args.out}, {args.performance_md} regenerated")


def write_performance_md(args, m, brokers, table, pngs, runs):
    analysis_path = os.path.join(HERE, "analysis.md")
    analysis = open(analysis_path).read() if os.path.exists(analysis_path) else ""
    rel = lambda p: os.path.relpath(p, os.path.dirname(args.performance_md))
    lines = [
        "# ringmq performance",
        "",
        "<!-- Generated by bench-scripts/bench.py: edit bench-scripts/analysis.md, not this file. -->",
        "",
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}, "
        f"open files limit {m['nofile_hard']}. All brokers on 127.0.0.1, one at a time, driven by the same "
        "`ringmq-bench` (which shares the cores with the broker: compare the per broker CPU-second columns).",
        "",
        "Produced by `bench-scripts/run.sh` (which installs the peers and builds ringmq in release mode, "
        "then runs `bench-scripts/bench.py`). Runs that make up these tables:",
        "",
    ] + [f"- `{r}`" for r in runs] + [
        "",
        "| broker | version | settings |",
        "|---|---|---|",
    ]
    for b in brokers:
        lines.append(f"| {b.name} | {b.version} | {b.note}; inflight {INFLIGHT}, queue {QUEUED} where configurable |")
    lines += ["", "## Results", "", table, ""]
    for p in pngs:
        lines.append(f"![{os.path.basename(p)}]({rel(p)})")
    lines += ["", analysis]
    lines += before_after_sections(args.out, rel)
    with open(args.performance_md, "w") as f:
        f.write("\n".join(lines) + "\n")


def before_after_sections(out, rel):
    """The before/after checks kept in subdirectories of the results (each
    a bench.py run with --baseline and --out results/NAME), with their
    commands, as PERFORMANCE.md sections."""
    lines = []
    subs = sorted(d for d in os.listdir(out) if os.path.isfile(os.path.join(out, d, "results.md")))
    if not subs:
        return lines
    lines += ["", "## Before/after checks", ""]
    for d in subs:
        path = os.path.join(out, d)
        note = os.path.join(path, "README.md")
        lines += [f"### {d}", ""]
        if os.path.exists(note):
            lines += [open(note).read().strip(), ""]
        try:
            with open(os.path.join(path, "machine.json")) as f:
                runs = json.load(f).get("runs", [])
        except (OSError, ValueError):
            runs = []
        lines += [f"- `{r}`" for r in runs]
        lines += ["", open(os.path.join(path, "results.md")).read().strip(), ""]
    return lines


if __name__ == "__main__":
    main()
