//! The real `swiftdrop` binary as a child process, for the tests that need
//! what an in-process server cannot give: its whole log, a SIGTERM, a
//! kill -9.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free port on 127.0.0.1: the kernel picks one, the server binds it
/// right after (and again after a restart: the listener reuses addresses).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Process {
    child: Child,
    pub base: String,
    log: PathBuf,
}

impl Process {
    /// Starts `swiftdrop <args>` with exactly `env` (nothing inherited),
    /// listening on `port`, its output appended to `log`.
    pub fn start(args: &[&str], env: &[(&str, String)], port: u16, log: &Path) -> Process {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the log");
        let child = Command::new(env!("CARGO_BIN_EXE_swiftdrop"))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("SWIFTDROP_ADDR", format!("127.0.0.1:{port}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("the swiftdrop binary starts");
        Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits until `/health` answers (at most a minute: a debug build on a
    /// busy machine runs its migrations slowly).
    pub async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited ({status}):\n{}", self.output());
            }
            if client.get(self.url("/health")).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not answer within 60 s:\n{}", self.output());
    }

    /// SIGKILL: no shutdown, no flush, exactly a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to 30 s for the exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Everything written to the log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
