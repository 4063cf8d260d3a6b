//! Host-wide claims on pod addresses. Every localfargate on a host with a real pod network
//! shares the host's bridge, but each keeps its own address management: two of them given the
//! same VPC model would hand out the same pod address, and the bridge would carry two pods with
//! one IP (probes and connections reaching the wrong pod). A claim is a file named after the
//! address in one directory on the host's `/run`, holding the claiming process's id: created
//! exclusively, taken over when its process is gone (a killed run, or this process's own
//! earlier run whose pods it adopted), and removed when the address is released.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where the claims of every localfargate on this host live.
pub const CLAIMS_DIR: &str = "/run/localfargate/pod-addresses";

/// The claims in one directory, made by this process.
#[derive(Debug, Clone)]
pub struct AddressClaims {
    dir: PathBuf,
    pid: u32,
}

impl AddressClaims {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        AddressClaims {
            dir: dir.into(),
            pid: std::process::id(),
        }
    }

    fn path(&self, ip: Ipv4Addr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// Claims `ip` for this process: true unless a live other process holds it. A claim that
    /// cannot be written (no `/run`, say) is granted: the address management of this process
    /// still holds, as it did before claims.
    pub fn claim(&self, ip: Ipv4Addr) -> bool {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return true;
        }
        let path = self.path(ip);
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", self.pid);
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    match holder(&path) {
                        Some(pid) if pid == self.pid => return true,
                        Some(pid) if localfargate_runs(pid) => return false,
                        // Its process is gone (or the file is half written): take it over.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(_) => return true,
            }
        }
        false
    }

    /// Gives `ip` back, if this process holds it.
    pub fn release(&self, ip: Ipv4Addr) {
        let path = self.path(ip);
        if holder(&path) == Some(self.pid) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn holder(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether a localfargate process with this pid runs (this one, or one whose command name is
/// this one's: a pid reused by another program does not count).
pub(crate) fn localfargate_runs(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let ours = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
    !comm.is_empty() && comm == ours
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_live_process_holds_an_address_and_a_dead_ones_claim_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mine = AddressClaims::new(dir.path());
        let ip = Ipv4Addr::new(10, 0, 128, 4);
        assert!(mine.claim(ip));
        assert!(mine.claim(ip), "claiming again what it holds");
        // Another live localfargate (a child of this test binary, with its command name) holds
        // the next one.
        let mut other = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--list")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let next = Ipv4Addr::new(10, 0, 128, 5);
        std::fs::write(dir.path().join(next.to_string()), other.id().to_string()).unwrap();
        // Until it has exec'd (before that it carries this thread's name).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !localfargate_runs(other.id()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!mine.claim(next));
        mine.release(next);
        assert!(
            dir.path().join(next.to_string()).exists(),
            "not ours to release"
        );
        // A process that is gone: its claim is taken over.
        let stale = Ipv4Addr::new(10, 0, 128, 6);
        std::fs::write(dir.path().join(stale.to_string()), "4194304").unwrap();
        assert!(mine.claim(stale));
        mine.release(ip);
        assert!(!dir.path().join(ip.to_string()).exists());
        let _ = other.kill();
        let _ = other.wait();
    }
}
