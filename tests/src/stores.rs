//! The shared stores of a fleet, run by the test itself: a `redis-server` on a free
//! loopback port, with nothing saved to disk, which the test can stop and start again.

use crate::process::Proc;
use std::process::Command;
use std::time::Duration;

const STARTUP: Duration = Duration::from_secs(20);

/// A `redis-server` the test owns; killed on drop.
pub struct Redis {
    port: u16,
    proc: Option<Proc>,
}

impl Redis {
    /// Starts `redis-server --port N --save ''` on a free port; fails (never skips) when
    /// the server is not installed.
    pub fn start() -> Redis {
        let mut r = Redis {
            port: crate::http::closed_port(),
            proc: None,
        };
        r.resume();
        r
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (as a crash or a network cut would look to the gateway).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts the server again on the same port (empty: nothing was saved).
    pub fn resume(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()]).args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!("redis-server is not installed: `apt-get install redis-server` (.ci/run does)");
        }
        let proc = Proc::spawn("redis-server", &mut cmd);
        let ready = proc.output.wait_for(STARTUP, |l| {
            l.contains("Ready to accept connections").then_some(())
        });
        if ready.is_none() {
            panic!(
                "redis-server did not start on port {}:\n{}",
                self.port,
                proc.output.text()
            );
        }
        self.proc = Some(proc);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
