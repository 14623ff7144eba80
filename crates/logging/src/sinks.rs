//! Sinks besides the console: a size-rolled log file, the most recent lines kept in memory
//! (for "export diagnostics"), and fan-out to several sinks.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::{Extra, Level, Sink};

/// One line of text for a record: time, level, tags, message, extra.
pub fn format_line(level: Level, message: &str, extra: &Extra, tags: &[String]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let mut line = format!(
        "{now:.3} {:>5} [{}] {message}",
        level.as_str().to_ascii_uppercase(),
        tags.join(",")
    );
    if !extra.is_empty() {
        line.push(' ');
        line.push_str(&Value::Object(extra.clone()).to_string());
    }
    line
}

/// Sends every record to each of `sinks`.
pub fn tee(sinks: Vec<Sink>) -> Sink {
    Arc::new(move |level, message, extra, tags| {
        for sink in &sinks {
            sink(level, message, extra, tags);
        }
    })
}

/// A log file that rolls over at `max_bytes`: `NAME` is current, `NAME.1` the one before, and
/// so on up to `keep` old files.
pub struct RollingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Mutex<Option<(File, u64)>>,
}

impl RollingFile {
    pub fn open(dir: &Path, name: &str, max_bytes: u64, keep: usize) -> std::io::Result<Arc<Self>> {
        fs::create_dir_all(dir)?;
        let path = dir.join(name);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        Ok(Arc::new(Self {
            path,
            max_bytes,
            keep,
            file: Mutex::new(Some((file, len))),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{n}"));
        self.path.with_file_name(name)
    }

    fn roll(&self) -> std::io::Result<(File, u64)> {
        for n in (1..self.keep).rev() {
            let from = self.numbered(n);
            if from.exists() {
                fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        if self.keep > 0 {
            fs::rename(&self.path, self.numbered(1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        Ok((file, 0))
    }

    /// Appends one line. Write errors are swallowed: logging must never take the app down.
    pub fn write_line(&self, line: &str) {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let needs_roll = guard
            .as_ref()
            .is_some_and(|(_, len)| *len + line.len() as u64 + 1 > self.max_bytes);
        if needs_roll {
            *guard = self.roll().ok();
        }
        if let Some((file, len)) = guard.as_mut() {
            if writeln!(file, "{line}").is_ok() {
                *len += line.len() as u64 + 1;
            }
        }
    }

    pub fn sink(self: &Arc<Self>) -> Sink {
        let file = self.clone();
        Arc::new(move |level, message, extra, tags| {
            file.write_line(&format_line(level, message, extra, tags))
        })
    }
}

/// The last `capacity` lines, for a diagnostics export.
pub struct RecentLines {
    capacity: usize,
    lines: Mutex<VecDeque<String>>,
}

impl RecentLines {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            lines: Mutex::new(VecDeque::with_capacity(capacity)),
        })
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn sink(self: &Arc<Self>) -> Sink {
        let recent = self.clone();
        Arc::new(move |level, message, extra, tags| {
            let mut lines = recent.lines.lock().unwrap_or_else(|p| p.into_inner());
            if lines.len() == recent.capacity {
                lines.pop_front();
            }
            lines.push_back(format_line(level, message, extra, tags));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_rolls_over_and_keeps_a_bounded_number_of_old_files() {
        let dir = std::env::temp_dir().join(format!("confab-logging-roll-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let file = RollingFile::open(&dir, "confab.log", 100, 2).unwrap();
        for i in 0..20 {
            file.write_line(&format!("line {i:02} {}", "x".repeat(20)));
        }
        let current = fs::read_to_string(file.path()).unwrap();
        assert!(current.contains("line 19"));
        assert!(current.len() <= 100);
        assert!(dir.join("confab.log.1").exists() && dir.join("confab.log.2").exists());
        assert!(!dir.join("confab.log.3").exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn recent_lines_keep_the_newest() {
        let recent = RecentLines::new(3);
        let sink = recent.sink();
        for i in 0..5 {
            sink(
                Level::Warn,
                &format!("m{i}"),
                &Extra::new(),
                &["client".into()],
            );
        }
        let lines = recent.snapshot();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].ends_with("m2") && lines[2].ends_with("m4"),
            "{lines:?}"
        );
        assert!(lines[2].contains("WARN [client] m4"));
    }
}
