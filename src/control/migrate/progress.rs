//! Progress of a long batch job (`migrate`, `keys reencrypt`): an `indicatif` bar with rows
//! done / total, rate and ETA when stdout is a terminal, otherwise one plain line every
//! [`PLAIN_EVERY`] (and one at the end), so logs of a non-interactive run show it too.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed when stdout is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// One job's progress.
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    /// Progress of `label` over about `total` rows (an estimate may be passed; it grows).
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        let label = label.into();
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} rows, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.clone());
            bar
        });
        let now = Instant::now();
        Progress {
            label,
            total,
            done: 0,
            started: now,
            last_line: now,
            bar,
            quiet: false,
        }
    }

    /// A progress that prints nothing (library callers and unit tests).
    pub fn hidden() -> Self {
        let mut p = Progress::new("", 0);
        p.bar = None;
        p.quiet = true;
        p
    }

    /// Sets the (estimated) total.
    pub fn set_total(&mut self, total: u64) {
        self.total = total.max(self.done);
        if let Some(b) = &self.bar {
            b.set_length(self.total);
        }
    }

    /// Starts counting from `done` (a resumed job).
    pub fn resume_at(&mut self, done: u64) {
        self.done = done;
        if let Some(b) = &self.bar {
            b.set_position(done);
        }
    }

    /// Adds `n` rows done.
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        if self.done > self.total {
            self.total = self.done;
            if let Some(b) = &self.bar {
                b.set_length(self.total);
            }
        }
        if let Some(b) = &self.bar {
            b.set_position(self.done);
            return;
        }
        if !self.quiet && self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = Instant::now();
            println!("{}", self.line());
        }
    }

    /// Rows done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// `label: done/total rows (rate rows/s, ETA s)`.
    pub fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        let left = self.total.saturating_sub(self.done) as f64;
        let eta = if rate > 0.0 { left / rate } else { 0.0 };
        format!(
            "{}: {}/{} rows ({:.0} rows/s, ETA {:.0}s)",
            self.label, self.done, self.total, rate, eta
        )
    }

    /// Ends the bar (or prints the last plain line).
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        } else if !self.quiet {
            println!("{}", self.line());
        }
    }
}
