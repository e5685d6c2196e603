//! How the report is written: sizes, errnos and faults as text, aligned lines, the summary.

use super::*;

// Formatting

/// `4 KiB`, `1 MiB`, `20592 bytes`, `1.5 GiB`.
pub(crate) fn size_text(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (MIB, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    for (unit, name) in UNITS {
        if bytes >= 10 * unit {
            return format!("{:.1} {name}", bytes as f64 / unit as f64);
        }
    }
    format!("{bytes} bytes")
}

/// `1 sector` / `3 sectors`.
pub(crate) fn sectors_text(n: u64) -> String {
    if n == 1 {
        "1 sector".to_owned()
    } else {
        format!("{n} sectors")
    }
}

/// `N x 4 KiB, N x 2 MiB, N fallbacks`.
pub(crate) fn faults_text(pte: u64, pmd: u64, fallbacks: u64) -> String {
    let fb = if fallbacks == 1 {
        "1 fallback from 2 MiB to 4 KiB".to_owned()
    } else {
        format!("{fallbacks} fallbacks from 2 MiB to 4 KiB")
    };
    format!("{pte} x 4 KiB, {pmd} x 2 MiB, {fb}")
}

/// Bytes as text when they are text, shown in quotes.
pub(crate) fn quoted(bytes: &[u8]) -> String {
    format!("\"{}\"", String::from_utf8_lossy(bytes))
}

/// `2026-08-07 12:34:56 UTC` for seconds since 1970.
pub(crate) fn utc_text(secs: u64) -> String {
    // Days to a civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Throughput in GiB/s.
pub(crate) fn gib_per_s(bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64().max(1e-9);
    format!("{:.2} GiB/s", bytes as f64 / secs / (1u64 << 30) as f64)
}

/// The report: numbered steps of aligned `label  text` lines, then a summary.
pub(crate) struct Report<'a> {
    pub(crate) out: &'a mut dyn Write,
    /// Show progress on stderr.
    pub(crate) progress: bool,
    /// One row per step: its title and what happened.
    pub(crate) steps: Vec<(String, String)>,
    /// Figures for the summary: label and value.
    pub(crate) figures: Vec<(String, String)>,
    /// Checks that failed without stopping the tour.
    pub(crate) failures: Vec<String>,
    /// The simulated mapping step's 4 KiB faults, 2 MiB faults and fallbacks.
    pub(crate) sim_faults: (u64, u64, u64),
    /// When progress was last shown.
    pub(crate) last_progress: std::cell::Cell<Option<Instant>>,
}

impl Report<'_> {
    pub(crate) fn title(&mut self, n: usize, title: &str) -> Result<(), TourError> {
        writeln!(self.out, "\n{n}. {title}")?;
        Ok(())
    }

    /// One line: a label, then text. A text with line breaks continues under itself.
    pub(crate) fn line(&mut self, label: &str, text: impl fmt::Display) -> Result<(), TourError> {
        let text = text.to_string();
        let mut lines = text.lines();
        writeln!(
            self.out,
            "   {label:<LABEL$} {}",
            lines.next().unwrap_or_default()
        )?;
        for more in lines {
            writeln!(self.out, "   {:<LABEL$} {more}", "")?;
        }
        Ok(())
    }

    pub(crate) fn done(&mut self, step: &str, what: impl fmt::Display) {
        self.steps.push((step.to_owned(), what.to_string()));
    }

    pub(crate) fn figure(&mut self, label: &str, value: impl fmt::Display) {
        self.figures.push((label.to_owned(), value.to_string()));
    }

    /// `what` turned out wrong: said in the report, and the tour fails at the end.
    pub(crate) fn failed(&mut self, what: String) -> Result<(), TourError> {
        self.line("CHECK FAILED", &what)?;
        self.failures.push(what);
        Ok(())
    }

    /// An in-place counter on stderr (only when stderr is a terminal).
    /// At most ten updates a second, so that it costs the measurement nothing.
    pub(crate) fn progress(&self, what: &str, done: u64, total: u64) {
        let due = self
            .last_progress
            .get()
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if self.progress && due {
            self.last_progress.set(Some(Instant::now()));
            eprint!(
                "\r\x1b[2K   {what}: {} of {}",
                size_text(done.min(total)),
                size_text(total)
            );
        }
    }

    pub(crate) fn progress_end(&self) {
        if self.progress {
            self.last_progress.set(None);
            eprint!("\r\x1b[2K");
        }
    }

    pub(crate) fn summary(&mut self) -> Result<(), TourError> {
        writeln!(self.out, "\nSummary")?;
        let w = self
            .steps
            .iter()
            .chain(&self.figures)
            .map(|(l, _)| l.len())
            .max()
            .unwrap_or(0);
        writeln!(self.out, "   {:<w$}  what happened", "step")?;
        for (l, v) in &self.steps {
            writeln!(self.out, "   {l:<w$}  {v}")?;
        }
        writeln!(self.out, "\n   {:<w$}  value", "figure")?;
        for (l, v) in &self.figures {
            writeln!(self.out, "   {l:<w$}  {v}")?;
        }
        Ok(())
    }
}
