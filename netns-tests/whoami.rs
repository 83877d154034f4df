//! `swarmnet whoami` answers as traefik/whoami does, checked with curl on loopback.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// Stops the server it holds, by PID, even when the test fails.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn whoami_answers_like_traefik_whoami() {
    let port = 20000 + (std::process::id() % 20000) as u16;
    let child = Command::new(bin())
        .args(["whoami", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .expect("start whoami");
    let _server = Server(child);
    let url = format!("http://127.0.0.1:{port}/hello?x=1");
    let body = eventually("whoami answers", Duration::from_secs(10), || {
        let out = Command::new("curl")
            .args(["-sf", "-H", "X-Test: 7", &url])
            .output()
            .map_err(|e| e.to_string())?;
        out.status
            .success()
            .then(|| stdout(&out))
            .ok_or_else(|| stderr(&out))
    });
    let hostname = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert!(
        body.starts_with(&format!("Hostname: {hostname}\n")),
        "{body}"
    );
    assert!(body.contains("IP: 127.0.0.1\n"), "{body}");
    assert!(body.contains("RemoteAddr: 127.0.0.1:"), "{body}");
    assert!(body.contains("GET /hello?x=1 HTTP/1.1\r\n"), "{body}");
    assert!(body.contains("X-Test: 7\r\n"), "{body}");
}
