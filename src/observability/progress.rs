//! Backfill progress for the operator: a one-line bar redrawn on stderr when
//! it is a terminal, a log line every few seconds otherwise (containers and
//! systemd capture stderr; a bar there would be noise). Progress also goes to
//! the metrics (`backfill_rows_copied` / `backfill_rows_estimated`).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::metrics::{Metrics, TableProgress};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressStyle {
    /// Redrawn bar on stderr.
    Bar,
    /// `info` log lines at most every [`LOG_INTERVAL`].
    LogLines,
    /// Metrics only.
    Silent,
}

impl ProgressStyle {
    /// A bar if stderr is a terminal, else log lines.
    pub fn detect() -> ProgressStyle {
        if std::io::stderr().is_terminal() {
            ProgressStyle::Bar
        } else {
            ProgressStyle::LogLines
        }
    }
}

/// Time between two progress log lines.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Time between two redraws of the bar.
const BAR_INTERVAL: Duration = Duration::from_millis(100);
const BAR_WIDTH: usize = 30;

/// Shared by the backfill's copy tasks; cheap to clone.
#[derive(Clone)]
pub struct BackfillProgress {
    metrics: Arc<Metrics>,
    style: ProgressStyle,
    inner: Arc<Mutex<Shown>>,
}

struct Shown {
    started: Instant,
    last_shown: Option<Instant>,
    current_table: String,
    bar_drawn: bool,
}

impl BackfillProgress {
    pub fn new(metrics: Arc<Metrics>, style: ProgressStyle) -> BackfillProgress {
        metrics.set_backfill_complete(false);
        BackfillProgress {
            metrics,
            style,
            inner: Arc::new(Mutex::new(Shown {
                started: Instant::now(),
                last_shown: None,
                current_table: String::new(),
                bar_drawn: false,
            })),
        }
    }

    /// A table's copy begins; `estimated_rows` is e.g. `pg_class.reltuples`.
    pub fn table_started(&self, table: &str, estimated_rows: u64) {
        self.metrics.set_backfill_progress(
            table,
            TableProgress {
                copied: 0,
                estimated: estimated_rows,
            },
        );
        self.lock().current_table = table.to_owned();
        self.show(false);
    }

    /// `rows` more rows of `table` are copied (committed to the change log).
    pub fn rows_copied(&self, table: &str, rows: u64) {
        self.metrics.add_backfill_rows(table, rows);
        self.show(false);
    }

    /// Shows progress read from elsewhere (the state file, by the sampler):
    /// every table's rows copied and estimated, and whether it is complete.
    pub fn observe(&self, tables: &[(String, TableProgress)], complete: bool) {
        for (table, progress) in tables {
            self.metrics.set_backfill_progress(table, *progress);
        }
        if let Some((table, _)) = tables.iter().rev().find(|(_, p)| p.copied > 0) {
            self.lock().current_table = table.clone();
        }
        if complete {
            if !self.metrics.backfill_complete() {
                self.finish();
            }
        } else {
            self.show(false);
        }
    }

    /// The backfill is complete: final line, readiness.
    pub fn finish(&self) {
        self.show(true);
        self.metrics.set_backfill_complete(true);
        let mut shown = self.lock();
        if shown.bar_drawn {
            eprintln!();
            shown.bar_drawn = false;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shown> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn show(&self, force: bool) {
        if self.style == ProgressStyle::Silent {
            return;
        }
        let mut shown = self.lock();
        let interval = match self.style {
            ProgressStyle::Bar => BAR_INTERVAL,
            _ => LOG_INTERVAL,
        };
        let now = Instant::now();
        if !force && shown.last_shown.is_some_and(|t| now - t < interval) {
            return;
        }
        shown.last_shown = Some(now);
        let (copied, estimated) = self
            .metrics
            .backfill_progress()
            .values()
            .fold((0, 0), |(c, e), p| (c + p.copied, e + p.estimated));
        let elapsed = shown.started.elapsed();
        let line = progress_line(copied, estimated, &shown.current_table, elapsed);
        match self.style {
            ProgressStyle::Bar => {
                let bar = bar(copied, estimated);
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2Kbackfill {bar} {line}");
                let _ = err.flush();
                shown.bar_drawn = true;
            }
            ProgressStyle::LogLines => tracing::info!("backfill: {line}"),
            ProgressStyle::Silent => {}
        }
    }
}

/// `4,500 of ~10,000 rows (45%), now: contacts, 1,234 rows/s`; before the
/// first table has started, `starting (~10,000 rows to copy)`.
pub fn progress_line(copied: u64, estimated: u64, table: &str, elapsed: Duration) -> String {
    if table.is_empty() {
        return format!("starting (~{} rows to copy)", thousands(estimated));
    }
    let rate = copied as f64 / elapsed.as_secs_f64().max(0.001);
    let percent = percent(copied, estimated);
    format!(
        "{} of ~{} rows ({percent}%), now: {table}, {} rows/s",
        thousands(copied),
        thousands(estimated.max(copied)),
        thousands(rate as u64)
    )
}

fn percent(copied: u64, estimated: u64) -> u64 {
    if estimated == 0 {
        return if copied == 0 { 0 } else { 100 };
    }
    (copied * 100 / estimated).min(100)
}

fn bar(copied: u64, estimated: u64) -> String {
    let filled = (percent(copied, estimated) as usize * BAR_WIDTH) / 100;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled))
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reaches_metrics_and_reads_well() {
        let metrics = Arc::new(Metrics::new());
        let progress = BackfillProgress::new(metrics.clone(), ProgressStyle::Silent);
        progress.table_started("contacts", 10_000);
        progress.rows_copied("contacts", 4_500);
        assert!(!metrics.backfill_complete());
        assert_eq!(
            metrics.backfill_progress()["contacts"],
            TableProgress {
                copied: 4_500,
                estimated: 10_000
            }
        );
        progress.finish();
        assert!(metrics.backfill_complete());
        assert_eq!(
            progress_line(4_500, 10_000, "contacts", Duration::from_secs(2)),
            "4,500 of ~10,000 rows (45%), now: contacts, 2,250 rows/s"
        );
        assert_eq!(
            progress_line(0, 0, "", Duration::from_millis(1)),
            "starting (~0 rows to copy)"
        );
        assert_eq!(
            bar(5, 10),
            format!("[{}{}]", "#".repeat(15), "-".repeat(15))
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
    }
}
