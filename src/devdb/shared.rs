//! One [`DevDb`] server shared by many users (the integration tests share one per test
//! module): [`DevDb::new_database`] hands out a handle on a fresh database of the same server,
//! dropped again with the handle, and [`DevDb::stop_at_exit`] ties the server's life to this
//! process for a server held in a `static` (statics are never dropped).

use std::io::ErrorKind;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{APP_USER, DevDb, DevDbError, SUPERUSER};

/// Numbers the databases made by this process (`t_0`, `t_1`, …).
static NEXT_DATABASE: AtomicU64 = AtomicU64::new(0);

/// The exit watcher: blocks reading its stdin (a pipe whose only writer is this process),
/// and at end of file (this process ended, however it ended) runs the stop command it was
/// given and removes the server's directory.
const EXIT_WATCHER: &str =
    r#"root=$1; shift; cat >/dev/null; "$@" >/dev/null 2>&1; rm -rf -- "$root""#;

impl DevDb {
    /// A handle on a fresh database `t_<n>` of this server, owned by [`APP_USER`] (made from
    /// `template1`, as [`APP_DATABASE`](super::APP_DATABASE) is), with its own scratch
    /// directory. Dropping the handle drops the database (`WITH (FORCE)`) and removes the
    /// directory; the server lives as long as any handle on it.
    pub async fn new_database(&self) -> Result<DevDb, DevDbError> {
        let name = format!("t_{}", NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
        let layout = &self.server.layout;
        let (client, task) = layout.socket_client(self.server.port).await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name} OWNER {APP_USER}"))
            .await
            .map_err(|e| layout.pg_err("creating a database", e))?;
        drop(client);
        let _ = task.await;
        let scratch = layout.root().join(format!("scratch-{name}"));
        std::fs::create_dir(&scratch).map_err(|e| DevDbError::Io {
            what: format!("cannot create directory {}", scratch.display()),
            source: e,
        })?;
        Ok(DevDb {
            server: Arc::clone(&self.server),
            database: name,
            scratch,
            owns_database: true,
        })
    }

    /// Makes sure the server is stopped and its directory removed when this process ends,
    /// even when no handle is ever dropped (a server held in a `static`) or the process is
    /// killed: a watcher child waits for end of file on a pipe only this process writes to
    /// (close-on-exec, so no other child inherits it), then runs `pg_ctl stop -m immediate`.
    /// Calling it again does nothing.
    pub fn stop_at_exit(&self) -> Result<(), DevDbError> {
        let server = &self.server;
        let mut watch = server.exit_watch.lock();
        if watch.is_some() {
            return Ok(());
        }
        let root = server.layout.root();
        let mut stop = server.pg.std_command("pg_ctl", root);
        stop.arg("-D").arg(server.layout.data());
        stop.args(["-w", "-t", "30", "stop", "-m", "immediate"]);
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(EXIT_WATCHER)
            .arg("sh")
            .arg(root)
            .arg(stop.get_program())
            .args(stop.get_args())
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C meant for the tests does not kill the watcher
            // before it has stopped the server.
            .process_group(0);
        for (name, value) in stop.get_envs() {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
        let mut child = cmd.spawn().map_err(|e| DevDbError::Io {
            what: "cannot start the exit watcher (/bin/sh)".into(),
            source: e,
        })?;
        let stdin = child.stdin.take().ok_or_else(|| DevDbError::Io {
            what: "the exit watcher has no stdin".into(),
            source: ErrorKind::BrokenPipe.into(),
        })?;
        // The child is never waited for: it outlives this process by design.
        *watch = Some(stdin);
        Ok(())
    }
}

impl Drop for DevDb {
    /// Drops a database made by [`DevDb::new_database`] (forcing off its sessions) over the
    /// Unix socket with `psql`, synchronously (no runtime needed), and removes its scratch
    /// directory. Best effort: the whole server goes away with its last handle anyway.
    fn drop(&mut self) {
        if !self.owns_database {
            return;
        }
        let server = &self.server;
        let layout = &server.layout;
        if layout.data().join("postmaster.pid").exists() {
            let mut cmd = server.pg.std_command("psql", layout.root());
            cmd.args(["-X", "-q", "-w", "-h"])
                .arg(layout.run())
                .arg("-p")
                .arg(server.port.to_string())
                .args(["-U", SUPERUSER, "-d", "postgres", "-c"])
                .arg(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.database
                ));
            let _ = cmd.output();
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
