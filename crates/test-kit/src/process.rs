//! A component binary run as a local process by an e2e test: the way a controller runs in a Pod, minus the
//! Pod. `cargo xtask e2e` builds every workspace binary first and names their directory in `PDO_BIN_DIR`.
//!
//! Output goes to `<PDO_BIN_DIR>/../e2e-logs/<name>-<pid>.log` (printed on start, kept after the test, so a
//! failure can be read). Dropping the handle stops the process (SIGTERM, then SIGKILL after 5 s).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of workspace binary `name`, from `PDO_BIN_DIR`.
pub fn bin_path(name: &str) -> PathBuf {
    let dir = std::env::var("PDO_BIN_DIR").unwrap_or_else(|_| {
        panic!("PDO_BIN_DIR is not set: run e2e tests with `cargo xtask e2e`, which builds {name} and sets it")
    });
    let p = PathBuf::from(dir).join(name);
    assert!(
        p.exists(),
        "{} does not exist: `cargo xtask e2e` builds it",
        p.display()
    );
    p
}

/// A running component.
pub struct Process {
    name: String,
    child: Option<Child>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Process {
    /// Starts binary `name` with `args` and extra `envs` (it inherits the test's environment, including
    /// `KUBECONFIG`).
    pub fn spawn(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Process {
        let bin = bin_path(name);
        let dir = bin.parent().expect("bin dir").join("e2e-logs");
        std::fs::create_dir_all(&dir).expect("creating the e2e log dir");
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let log = dir.join(format!("{name}-{stamp}.log"));
        let out = File::create(&log).expect("creating the process log");
        let err = out.try_clone().expect("cloning the log handle");
        let child = Command::new(&bin)
            .args(args)
            .envs(envs.iter().copied())
            .env("LOG_FORMAT", "text")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        eprintln!(
            "started {name} (pid {}), log: {}",
            child.id(),
            log.display()
        );
        Process {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    /// The process's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// Kills it with SIGKILL at once: a crash, for crash-safety tests.
    pub fn crash(&mut self) {
        self.signal("-KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits up to 5 s (SIGKILL after); returns whether it exited cleanly in time.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        self.signal_child(&c, "-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                eprintln!("{} did not stop within 5 s of SIGTERM", self.name);
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal_child(&self, c: &Child, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &c.id().to_string()])
            .status();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
