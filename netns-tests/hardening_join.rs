//! A stranger on the underlay cannot exhaust the manager's memory: an
//! outsider machine streams large lines over many connections without a
//! certificate, and the manager daemon's RSS stays bounded and returns.

use std::time::{Duration, Instant};

use crate::harness::*;

/// Opens connections from 32 threads for 8 s, each streaming a 7 MiB line
/// with no newline, reconnecting whenever the manager closes it.
const FLOOD: &str = r#"
import socket, ssl, threading, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
end = time.time() + 8
chunk = b"x" * 65536
opened = []
def flood():
    while time.time() < end:
        try:
            s = ctx.wrap_socket(socket.create_connection(("192.168.99.100", 2377), timeout=5))
            opened.append(1)
            for _ in range(112):
                s.sendall(chunk)
        except Exception:
            time.sleep(0.05)
threads = [threading.Thread(target=flood) for _ in range(32)]
for t in threads: t.start()
for t in threads: t.join()
print(len(opened))
"#;

fn daemon_pid(lab: &Lab, machine: &str) -> i32 {
    let out = ok(&lab.run(&["machine", "inspect", machine]));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    info["daemon_pid"]
        .as_i64()
        .expect("machine inspect gives the daemon pid") as i32
}

/// The process's resident memory in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
#[ignore = "needs root"]
fn strangers_streaming_large_lines_leave_the_managers_memory_bounded() {
    let lab = Lab::new();
    lab.machines(&["vm1", "outsider"]);
    lab.swarm("vm1", "192.168.99.100", &[]);
    let pid = daemon_pid(&lab, "vm1");
    let baseline = rss_kib(pid);

    let mut flood = lab
        .cmd(&["machine", "ssh", "outsider", "--", "python3", "-c", FLOOD])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the flood");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peak = baseline;
    while flood.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the flood ran past 60 s");
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let opened = flood.wait_with_output().unwrap();
    let opened: u64 = stdout(&opened).trim().parse().unwrap_or(0);
    assert!(
        opened >= 100,
        "the outsider opened only {opened} TLS connections"
    );
    assert!(
        peak < baseline + 64 * 1024,
        "the manager grew from {baseline} KiB to {peak} KiB under the flood"
    );

    eventually(
        "RSS back near its baseline",
        Duration::from_secs(30),
        || {
            let now = rss_kib(pid);
            if now < baseline + 16 * 1024 {
                Ok(())
            } else {
                Err(format!(
                    "{now} KiB against a baseline of {baseline} KiB (peak {peak} KiB)"
                ))
            }
        },
    );
    ok(&lab.sn("vm1", &["node", "ls"]));
}
