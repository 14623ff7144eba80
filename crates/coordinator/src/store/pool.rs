//! The store's connections (one writer, a few readers, each behind its own lock), the schema
//! migrations, and the private modes of the files the store creates.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::StoreError;

/// Each entry moves the schema one version up; never edit one that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE apps (
        api_key TEXT PRIMARY KEY,
        api_secret TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT,
        image TEXT,
        custom TEXT NOT NULL DEFAULT '{}',
        role TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE calls (
        cid TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        created_by TEXT NOT NULL,
        custom TEXT NOT NULL DEFAULT '{}',
        backstage INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE members (
        call_cid TEXT NOT NULL REFERENCES calls(cid) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        role TEXT NOT NULL,
        custom TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (call_cid, user_id)
    );",
];

/// The connections: one writer, and readers that may be empty (reads then use the writer).
pub(super) struct Pool {
    pub(super) writer: Mutex<Connection>,
    pub(super) readers: Vec<Mutex<Connection>>,
    /// Where the next read starts looking for a free reader.
    pub(super) next_reader: AtomicUsize,
    /// One permit per connection a read may use, and one for the writer.
    pub(super) read_slots: Semaphore,
    pub(super) write_slot: Semaphore,
}

/// A poisoned lock is still safe to use: a panic while holding it cannot leave SQLite
/// half-written (each write is one statement or transaction).
pub(super) fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    pub(super) fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }

    /// A free reader. The caller holds a read permit, so one is free unless a blocking
    /// (start-up) call holds it; then it waits for the one it started at.
    pub(super) fn reader(&self) -> MutexGuard<'_, Connection> {
        if self.readers.is_empty() {
            return self.writer();
        }
        let count = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % count;
        for i in 0..count {
            match self.readers[(start + i) % count].try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            }
        }
        lock(&self.readers[start])
    }
}

/// Creates `dir` and missing parents as 0700 (owner only). An existing folder is left as it
/// is: it may be one the user chose and shares on purpose; the database file is still private.
pub(super) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates `path` as 0600 if missing, and makes an existing file 0600.
pub(super) fn make_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    drop(file);
    Ok(())
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
