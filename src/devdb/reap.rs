//! Reaping what crashed runs left behind: a [`DevDb`](super::DevDb) whose process was killed
//! (SIGKILL, a test timeout) never ran `Drop`, so its server keeps running and its directory
//! stays. Every directory records its creator's PID; [`reap_orphans`] stops the server and
//! removes the directory of every one whose creator is gone.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::cluster::Layout;
use super::pgbin::PgBin;

/// Prefix of every DevDb temporary directory.
pub(crate) const DIR_PREFIX: &str = "pgcloak-devdb-";
/// File in the DevDb directory holding the creating process's PID.
pub(crate) const OWNER_FILE: &str = "owner.pid";

/// Records this process as the owner of `root`.
pub(crate) fn claim(root: &Path) -> std::io::Result<()> {
    std::fs::write(root.join(OWNER_FILE), std::process::id().to_string())
}

/// Stops and removes DevDbs under `tmp` whose owner process no longer exists. Best effort:
/// failures are ignored (another process may be reaping the same directory).
pub(crate) async fn reap_orphans(pg: &PgBin, tmp: &Path) {
    for root in orphans(tmp) {
        let layout = Layout::new(&root);
        let data = layout.data();
        if data.join("postmaster.pid").exists() {
            let args = ["-D".as_ref(), data.as_os_str(), "-w".as_ref()];
            let stop = ["stop".as_ref(), "-m".as_ref(), "immediate".as_ref()];
            let all: Vec<&std::ffi::OsStr> = args.into_iter().chain(stop).collect();
            let _ = pg.run("pg_ctl", all, &root, None).await;
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}

fn orphans(tmp: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(DIR_PREFIX))
        .map(|e| e.path())
        .filter(|root| owner_is_gone(root))
        .collect()
}

/// True only when the directory names an owner PID and that process does not exist; a
/// directory without a readable owner file (being created right now) is left alone.
fn owner_is_gone(root: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(root.join(OWNER_FILE)) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return false;
    };
    pid > 0 && kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dirs_with_a_dead_owner_are_orphans() {
        let tmp = tempfile::tempdir().unwrap();
        let mk = |name: &str, owner: Option<&str>| {
            let d = tmp.path().join(name);
            std::fs::create_dir(&d).unwrap();
            if let Some(o) = owner {
                std::fs::write(d.join(OWNER_FILE), o).unwrap();
            }
            d
        };
        // PIDs are capped well below i32::MAX (pid_max ≤ 2^22), so this one cannot exist.
        let dead = mk("pgcloak-devdb-dead", Some("2147483000"));
        mk("pgcloak-devdb-alive", Some(&std::process::id().to_string()));
        mk("pgcloak-devdb-new", None);
        mk("pgcloak-devdb-junk", Some("not a pid"));
        mk("other-dead", Some("2147483000"));
        assert_eq!(orphans(tmp.path()), vec![dead]);
    }
}
