//! Locating PostgreSQL's server binaries (`$PGCLOAK_PG_BINDIR`, else `pg_config --bindir`,
//! else the highest `/usr/lib/postgresql/*/bin`) and running them as the right OS user:
//! directly, or through `runuser -u postgres --` when this process is root (PostgreSQL
//! refuses to run as root).

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};

use nix::unistd::{Gid, Uid, User};

use super::DevDbError;

/// Environment variables that would redirect or alter the PostgreSQL tools; never inherited.
const SCRUBBED_ENV: &[&str] = &[
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGSSLMODE",
    "PGCLIENTENCODING",
    "PGCTLTIMEOUT",
];

/// The OS account the server runs as when we are root.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: Uid,
    gid: Gid,
}

/// Where the binaries are and whom they run as.
#[derive(Debug, Clone)]
pub(crate) struct PgBin {
    bindir: PathBuf,
    owner: Option<Owner>,
}

impl PgBin {
    /// Finds the binaries and, when root, the `postgres` OS user.
    pub(crate) async fn locate() -> Result<PgBin, DevDbError> {
        let bindir = find_bindir().await?;
        let owner = if nix::unistd::geteuid().is_root() {
            let user = User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or(DevDbError::NoPostgresUser)?;
            Some(Owner {
                uid: user.uid,
                gid: user.gid,
            })
        } else {
            None
        };
        Ok(PgBin { bindir, owner })
    }

    /// The directory holding the PostgreSQL binaries.
    pub(crate) fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// A command running `tool` (e.g. "pg_ctl") as the server's OS user, in `cwd`, with a
    /// scrubbed PostgreSQL environment and C messages. Output is captured; stdin is null.
    /// `tool` may also be the absolute path of a system program (e.g. "/bin/cp").
    pub(crate) fn std_command(&self, tool: &str, cwd: &Path) -> StdCommand {
        let exe = self.bindir.join(tool); // an absolute `tool` replaces the bindir
        let mut cmd = if self.owner.is_some() {
            let mut c = StdCommand::new("runuser");
            c.args([OsStr::new("-u"), OsStr::new("postgres"), OsStr::new("--")]);
            c.arg(exe);
            c
        } else {
            StdCommand::new(exe)
        };
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        cmd.env("LC_ALL", "C")
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `tool` with `args` to completion; a non-zero exit becomes
    /// [`DevDbError::Command`] with the tool's own output and the tail of `log` (if given).
    pub(crate) async fn run<I, S>(
        &self,
        tool: &str,
        args: I,
        cwd: &Path,
        log: Option<&Path>,
    ) -> Result<Output, DevDbError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut std_cmd = self.std_command(tool, cwd);
        std_cmd.args(args);
        let shown = describe(&std_cmd);
        let mut cmd = tokio::process::Command::from(std_cmd);
        cmd.kill_on_drop(true);
        let out = cmd.output().await.map_err(|e| DevDbError::Io {
            what: format!("cannot run `{shown}`"),
            source: e,
        })?;
        if out.status.success() {
            return Ok(out);
        }
        Err(DevDbError::Command {
            command: shown,
            detail: format!("{}: {}", out.status, output_tail(&out)),
            log_tail: log.map(log_tail).unwrap_or_default(),
        })
    }

    /// Sets `path`'s mode and, when root, hands it to the server's OS user.
    pub(crate) fn give(&self, path: &Path, mode: u32) -> Result<(), DevDbError> {
        let io = |e| DevDbError::Io {
            what: format!("cannot set owner/mode of {}", path.display()),
            source: e,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
        if let Some(o) = self.owner {
            std::os::unix::fs::chown(path, Some(o.uid.as_raw()), Some(o.gid.as_raw()))
                .map_err(io)?;
        }
        Ok(())
    }
}

/// The environment variable naming the binaries' directory; when set, nothing else is tried.
pub const BINDIR_ENV: &str = "PGCLOAK_PG_BINDIR";

/// `$PGCLOAK_PG_BINDIR` when set (it must hold `initdb`: no fallback), else `pg_config
/// --bindir` if it names a directory holding `initdb`, else the highest-numbered
/// `/usr/lib/postgresql/*/bin` holding `initdb`.
async fn find_bindir() -> Result<PathBuf, DevDbError> {
    if let Some(dir) = std::env::var_os(BINDIR_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
        return Err(DevDbError::BinariesNotFound {
            looked_for: format!("{BINDIR_ENV}={}/initdb", dir.display()),
        });
    }
    let from_pg_config = tokio::process::Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|d| d.join("initdb").is_file()) {
        return Ok(dir);
    }
    highest_versioned_bindir(Path::new("/usr/lib/postgresql")).ok_or_else(|| {
        DevDbError::BinariesNotFound {
            looked_for: "`pg_config --bindir`, then /usr/lib/postgresql/*/bin/initdb".into(),
        }
    })
}

fn highest_versioned_bindir(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = version_key(&e.file_name().to_string_lossy())?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// "15" → [15], "9.6" → [9, 6]; anything else is not a version directory.
fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|p| p.parse().ok()).collect()
}

/// The command line for error messages (arguments never carry secrets: passwords go in files).
fn describe(cmd: &StdCommand) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn output_tail(out: &Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    tail_lines(&text, 10)
}

/// The last lines of the server log, for error messages.
pub(crate) fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(4096);
            tail_lines(&String::from_utf8_lossy(&bytes[start..]), 15)
        }
        Err(_) => String::new(),
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_order_numerically() {
        assert!(version_key("16").unwrap() > version_key("9.6").unwrap());
        assert!(version_key("10").unwrap() > version_key("9").unwrap());
        assert_eq!(version_key("common"), None);
    }

    #[test]
    fn highest_bindir_picks_the_newest_with_initdb() {
        let root = tempfile::tempdir().unwrap();
        for (v, with_initdb) in [("9.6", true), ("13", true), ("17", false), ("x", true)] {
            let bin = root.path().join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            if with_initdb {
                std::fs::write(bin.join("initdb"), b"").unwrap();
            }
        }
        let got = highest_versioned_bindir(root.path()).unwrap();
        assert_eq!(got, root.path().join("13").join("bin"));
        assert_eq!(highest_versioned_bindir(&root.path().join("missing")), None);
    }

    #[test]
    fn tail_keeps_last_nonempty_lines() {
        assert_eq!(tail_lines("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("", 3), "");
    }
}
