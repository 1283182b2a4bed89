//! Starting and stopping the cluster's processes by recorded PID.
//!
//! Each process runs in its own process group (so a Ctrl-C in the terminal that ran `cluster up` does not
//! reach it), logs to `logs/<name>.log`, and has `pids/<name>.pid` holding `<pid> <binary path>`. Stopping
//! checks that `/proc/<pid>/exe` still is that binary before signalling, so a recycled PID is never hit.

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub struct Procs {
    dir: PathBuf,
}

impl Procs {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Starts `cmd` detached, logging to `logs/<name>.log`, and records its PID.
    pub fn start(&self, name: &str, cmd: &mut Command) -> Result<u32> {
        let logs = self.dir.join("logs");
        let pids = self.dir.join("pids");
        fs::create_dir_all(&logs)?;
        fs::create_dir_all(&pids)?;
        let log = File::create(logs.join(format!("{name}.log")))?;
        let program = cmd.get_program().to_os_string();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name} ({})", Path::new(&program).display()))?;
        let pid = child.id();
        // Record the resolved executable, to recognise this exact process later.
        let exe =
            fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_else(|_| PathBuf::from(&program));
        let order = fs::read_dir(&pids)?.count();
        fs::write(
            pids.join(format!("{order:02}-{name}.pid")),
            format!("{pid} {}", exe.display()),
        )?;
        println!("started {name} (pid {pid})");
        Ok(pid)
    }

    /// Stops every recorded process, newest first: SIGTERM, then SIGKILL after 10 s.
    pub fn stop_all(&self) -> Result<()> {
        let mut entries = records(&self.dir)?;
        entries.reverse();
        for (name, pid, exe, path) in entries {
            if is_ours(pid, &exe) {
                signal(pid, "TERM");
                let deadline = Instant::now() + Duration::from_secs(10);
                while is_ours(pid, &exe) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
                if is_ours(pid, &exe) {
                    eprintln!("{name} (pid {pid}) ignored SIGTERM for 10s; killing it");
                    signal(pid, "KILL");
                }
                println!("stopped {name} (pid {pid})");
            }
            let _ = fs::remove_file(path);
        }
        Ok(())
    }
}

type Record = (String, u32, PathBuf, PathBuf);

fn records(dir: &Path) -> Result<Vec<Record>> {
    let pids = dir.join("pids");
    if !pids.exists() {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir(&pids)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for path in files {
        let text = fs::read_to_string(&path)?;
        let (pid, exe) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let name = name.split_once('-').map_or(name, |(_, n)| n).to_string();
        out.push((name, pid.parse()?, PathBuf::from(exe), path));
    }
    Ok(out)
}

/// `(name, pid, alive)` for every recorded process.
pub fn list(dir: &Path) -> Result<Vec<(String, u32, bool)>> {
    Ok(records(dir)?
        .into_iter()
        .map(|(n, pid, exe, _)| (n, pid, is_ours(pid, &exe)))
        .collect())
}

/// Whether every recorded process is alive (and there is at least one).
pub fn all_alive(dir: &Path) -> bool {
    list(dir).is_ok_and(|l| !l.is_empty() && l.iter().all(|(_, _, alive)| *alive))
}

fn is_ours(pid: u32, exe: &Path) -> bool {
    // A zombie (exited, not yet reaped) has no exe link, so it counts as gone. A binary rebuilt since the
    // process started (cargo replaced sim-kubelet) shows as "<path> (deleted)": still ours and alive.
    fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| {
        let e = e.to_string_lossy();
        exe.as_os_str().is_empty()
            || e.strip_suffix(" (deleted)").unwrap_or(&e) == exe.to_string_lossy()
    })
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// `n` distinct free TCP ports on 127.0.0.1.
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}
