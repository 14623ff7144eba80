//! SQLite storage: apps, users (guests are users with the `guest` role), calls and members.
//!
//! Why it is shaped this way: a SQLite call blocks its thread, so none runs on the async
//! workers. Each request-path method is `async` and runs its statements on tokio's blocking
//! pool. The database is in WAL mode, where readers never wait for the writer: one writer
//! connection takes every write, and a few reader connections (`query_only`) serve reads
//! side by side, each behind its own lock. Async semaphores sized to those connections make
//! callers queue on the async side, so a burst never parks hundreds of blocking threads on a
//! lock. An in-memory store (tests) has one connection for both.
//!
//! Schema changes are numbered migrations tracked in `PRAGMA user_version`.
//!
//! `pool.rs` holds the connections, the migrations and the private file modes; `rows.rs`
//! the statements shared by several methods; this file the store's own API.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use tokio::sync::Semaphore;

mod pool;
mod rows;

use pool::*;
use rows::*;

/// The database file inside the data folder.
pub const DB_FILE: &str = "coordinator.sqlite3";

/// Reader connections of a file-backed store.
const READERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the data directory's schema is version {found}, newer than this coordinator's {supported}"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("stored JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("could not prepare the data folder: {0}")]
    Io(std::io::Error),
    #[error("the storage worker stopped before answering")]
    Closed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: String,
    pub name: Option<String>,
    pub image: Option<String>,
    pub custom: Value,
    pub role: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub cid: String,
    pub call_type: String,
    pub id: String,
    pub created_by: String,
    pub custom: Value,
    pub backstage: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberRecord {
    pub user_id: String,
    pub role: String,
    pub custom: Value,
    pub created_at: String,
    pub updated_at: String,
}

/// The fields of a user that a client may set.
#[derive(Debug, Clone, Default)]
pub struct UserDetails {
    pub name: Option<String>,
    pub image: Option<String>,
    pub custom: Option<Value>,
}

/// The coordinator's database. Cloning it is cheap and shares the connections.
#[derive(Clone)]
pub struct Store {
    pool: Arc<Pool>,
}

impl Store {
    /// Opens (creating if needed) `data_dir/coordinator.sqlite3`. A folder this creates is
    /// private (0700) and the database file is always made private (0600): it holds the
    /// app's secret.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir).map_err(StoreError::Io)?;
        let path = data_dir.join(DB_FILE);
        make_private_file(&path).map_err(StoreError::Io)?;
        let writer = Connection::open(&path)?;
        let writer = Self::prepare_writer(writer)?;
        // SQLite creates the WAL and shared-memory files with the database file's mode;
        // older versions may have left looser ones behind.
        for suffix in ["-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            let extra = std::path::PathBuf::from(name);
            if extra.exists() {
                make_private_file(&extra).map_err(StoreError::Io)?;
            }
        }
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open(&path)?;
            reader.busy_timeout(std::time::Duration::from_secs(5))?;
            reader.pragma_update(None, "query_only", "ON")?;
            readers.push(Mutex::new(reader));
        }
        Ok(Self::from_parts(writer, readers))
    }

    pub fn in_memory() -> Result<Self, StoreError> {
        let writer = Self::prepare_writer(Connection::open_in_memory()?)?;
        Ok(Self::from_parts(writer, Vec::new()))
    }

    fn prepare_writer(mut conn: Connection) -> Result<Connection, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(conn)
    }

    fn from_parts(writer: Connection, readers: Vec<Mutex<Connection>>) -> Self {
        let read_slots = Semaphore::new(readers.len().max(1));
        Self {
            pool: Arc::new(Pool {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                read_slots,
                write_slot: Semaphore::new(1),
            }),
        }
    }

    /// Runs `f` on a reader, on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // Without readers, reads share the writer and so its permit.
        let slots = if self.pool.readers.is_empty() {
            &self.pool.write_slot
        } else {
            &self.pool.read_slots
        };
        let _permit = slots.acquire().await.map_err(|_| StoreError::Closed)?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || f(&pool.reader()))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on the writer, on the blocking pool.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self
            .pool
            .write_slot
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || f(&mut pool.writer()))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    // Blocking calls, for start-up and the command line (never from a request handler).

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .pool
            .writer()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// The first app stored, if any. Blocking.
    pub fn app(&self) -> Result<Option<(String, String)>, StoreError> {
        first_app(&self.pool.writer())
    }

    /// The app's key and secret: the first one stored, or `create()` stored now. Blocking.
    pub fn app_or_insert(
        &self,
        create: impl FnOnce() -> (String, String),
    ) -> Result<(String, String), StoreError> {
        let conn = self.pool.writer();
        if let Some(app) = first_app(&conn)? {
            return Ok(app);
        }
        let (key, secret) = create();
        conn.execute(
            "INSERT INTO apps (api_key, api_secret, created_at) VALUES (?1, ?2, ?3)",
            params![key, secret, now()],
        )?;
        Ok((key, secret))
    }

    /// Stores a given key and secret, replacing the secret if the key exists. Blocking.
    pub fn put_app(&self, key: &str, secret: &str) -> Result<(), StoreError> {
        self.pool.writer().execute(
            "INSERT INTO apps (api_key, api_secret, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(api_key) DO UPDATE SET api_secret = excluded.api_secret",
            params![key, secret, now()],
        )?;
        Ok(())
    }

    // What requests use: each runs on the blocking pool.

    pub async fn app_secret(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT api_secret FROM apps WHERE api_key = ?1",
                    [key],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| user_in(conn, &id)).await
    }

    /// Creates the user with `role`, or updates the details given (the role of an existing
    /// user is kept: a client cannot promote itself).
    pub async fn upsert_user(
        &self,
        id: &str,
        details: &UserDetails,
        role: &str,
    ) -> Result<UserRecord, StoreError> {
        let custom = details
            .custom
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?;
        let (id, name, image, role) = (
            id.to_owned(),
            details.name.clone(),
            details.image.clone(),
            role.to_owned(),
        );
        self.write(move |conn| {
            let now = now();
            conn.execute(
                "INSERT INTO users (id, name, image, custom, role, created_at, updated_at)
                 VALUES (?1, ?2, ?3, COALESCE(?4, '{}'), ?5, ?6, ?6)
                 ON CONFLICT(id) DO UPDATE SET
                   name = COALESCE(excluded.name, users.name),
                   image = COALESCE(excluded.image, users.image),
                   custom = COALESCE(?4, users.custom),
                   updated_at = CASE WHEN ?2 IS NULL AND ?3 IS NULL AND ?4 IS NULL
                                THEN users.updated_at ELSE excluded.updated_at END",
                params![id, name, image, custom, role, now],
            )?;
            user_in(conn, &id)?.ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
        })
        .await
    }

    /// Creates a user that must be new. Returns `None`, changing nothing, if the id is taken:
    /// the check and the insert are one statement, so two requests cannot both get it.
    pub async fn insert_new_user(
        &self,
        id: &str,
        details: &UserDetails,
        role: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let custom = details
            .custom
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?;
        let (id, name, image, role) = (
            id.to_owned(),
            details.name.clone(),
            details.image.clone(),
            role.to_owned(),
        );
        self.write(move |conn| {
            let inserted = conn.execute(
                "INSERT OR IGNORE INTO users (id, name, image, custom, role, created_at, updated_at)
                 VALUES (?1, ?2, ?3, COALESCE(?4, '{}'), ?5, ?6, ?6)",
                params![id, name, image, custom, role, now()],
            )?;
            if inserted == 0 {
                return Ok(None);
            }
            user_in(conn, &id)
        })
        .await
    }

    /// Records a user seen only through its token (REST before any socket), with `role`,
    /// unless the store already knows it. Keeps the id from being taken by a guest.
    pub async fn remember_user(&self, id: &str, role: &str) -> Result<(), StoreError> {
        let (id, role) = (id.to_owned(), role.to_owned());
        self.write(move |conn| {
            let now = now();
            conn.execute(
                "INSERT OR IGNORE INTO users (id, role, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                params![id, role, now],
            )?;
            Ok(())
        })
        .await
    }

    /// How many members a call has.
    pub async fn member_count(&self, cid: &str) -> Result<usize, StoreError> {
        let cid = cid.to_owned();
        self.read(move |conn| {
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM members WHERE call_cid = ?1",
                [cid],
                |r| r.get(0),
            )?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
        .await
    }

    pub async fn call(&self, cid: &str) -> Result<Option<CallRecord>, StoreError> {
        let cid = cid.to_owned();
        self.read(move |conn| call_in(conn, &cid)).await
    }

    /// Creates a call and its first members in one transaction. Returns false if it existed.
    pub async fn create_call(
        &self,
        call: &CallRecord,
        members: &[(String, String, Value)],
    ) -> Result<bool, StoreError> {
        let call = call.clone();
        let members = members.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO calls (cid, type, id, created_by, custom, backstage, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                params![
                    call.cid,
                    call.call_type,
                    call.id,
                    call.created_by,
                    serde_json::to_string(&call.custom)?,
                    call.backstage,
                    call.created_at
                ],
            )? == 1;
            if inserted {
                for (user_id, role, custom) in &members {
                    upsert_member(&tx, &call.cid, user_id, role, custom)?;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
        .await
    }

    pub async fn set_backstage(&self, cid: &str, backstage: bool) -> Result<(), StoreError> {
        let cid = cid.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE calls SET backstage = ?2, updated_at = ?3 WHERE cid = ?1",
                params![cid, backstage, now()],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn members(&self, cid: &str) -> Result<Vec<MemberRecord>, StoreError> {
        let cid = cid.to_owned();
        self.read(move |conn| members_in(conn, &cid)).await
    }

    /// The call's members and the users among them and `more_ids`, by id, in one read:
    /// what a call's view shows.
    pub async fn members_and_users(
        &self,
        cid: &str,
        more_ids: Vec<String>,
    ) -> Result<(Vec<MemberRecord>, HashMap<String, UserRecord>), StoreError> {
        let cid = cid.to_owned();
        self.read(move |conn| {
            let members = members_in(conn, &cid)?;
            let mut users = HashMap::new();
            let ids = members.iter().map(|m| &m.user_id).chain(more_ids.iter());
            for id in ids {
                if !users.contains_key(id) {
                    if let Some(user) = user_in(conn, id)? {
                        users.insert(id.clone(), user);
                    }
                }
            }
            Ok((members, users))
        })
        .await
    }

    /// Adds or updates members and removes others, in one transaction.
    pub async fn update_members(
        &self,
        cid: &str,
        upserts: &[(String, String, Value)],
        removals: &[String],
    ) -> Result<(), StoreError> {
        let (cid, upserts, removals) = (cid.to_owned(), upserts.to_vec(), removals.to_vec());
        self.write(move |conn| {
            let tx = conn.transaction()?;
            for (user_id, role, custom) in &upserts {
                upsert_member(&tx, &cid, user_id, role, custom)?;
            }
            for user_id in &removals {
                tx.execute(
                    "DELETE FROM members WHERE call_cid = ?1 AND user_id = ?2",
                    params![cid, user_id],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Calls whose cid is in `cids` (all calls when `None`), newest first.
    pub async fn calls(
        &self,
        cids: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let cids = cids.map(<[String]>::to_vec);
        self.read(move |conn| {
            let mut out = Vec::new();
            match cids {
                Some(cids) => {
                    let mut stmt = conn.prepare_cached("SELECT cid FROM calls WHERE cid = ?1")?;
                    for cid in cids.iter().take(limit) {
                        if let Some(cid) = stmt.query_row([cid], |r| r.get(0)).optional()? {
                            out.push(cid);
                        }
                    }
                }
                None => {
                    let mut stmt = conn.prepare_cached(
                        "SELECT cid FROM calls ORDER BY created_at DESC LIMIT ?1",
                    )?;
                    for cid in stmt.query_map([limit as i64], |r| r.get(0))? {
                        out.push(cid?);
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}

/// RFC 3339 with milliseconds, as Stream formats timestamps.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn data_survives_reopening_and_migrations_are_versioned() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
            store.put_app("key", "secret").unwrap();
            store
                .upsert_user(
                    "alice",
                    &UserDetails {
                        name: Some("Alice".into()),
                        ..Default::default()
                    },
                    "user",
                )
                .await
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.app_secret("key").await.unwrap().as_deref(),
            Some("secret")
        );
        assert_eq!(
            store.user("alice").await.unwrap().unwrap().name.as_deref(),
            Some("Alice")
        );
    }

    #[test]
    fn a_newer_schema_is_refused_not_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[tokio::test]
    async fn upsert_keeps_the_role_and_unset_fields() {
        let store = Store::in_memory().unwrap();
        store
            .upsert_user(
                "g",
                &UserDetails {
                    name: Some("Guest".into()),
                    custom: Some(json!({"a": 1})),
                    ..Default::default()
                },
                "guest",
            )
            .await
            .unwrap();
        let user = store
            .upsert_user("g", &UserDetails::default(), "admin")
            .await
            .unwrap();
        assert_eq!(user.role, "guest");
        assert_eq!(user.name.as_deref(), Some("Guest"));
        assert_eq!(user.custom, json!({"a": 1}));
    }

    #[tokio::test]
    async fn calls_and_members() {
        let store = Store::in_memory().unwrap();
        let call = CallRecord {
            cid: "default:x".into(),
            call_type: "default".into(),
            id: "x".into(),
            created_by: "alice".into(),
            custom: json!({}),
            backstage: false,
            created_at: now(),
            updated_at: now(),
        };
        let members = vec![("bob".to_string(), "user".to_string(), json!({}))];
        assert!(store.create_call(&call, &members).await.unwrap());
        assert!(!store.create_call(&call, &[]).await.unwrap());
        assert_eq!(store.members("default:x").await.unwrap()[0].user_id, "bob");
        // Members become users.
        assert!(store.user("bob").await.unwrap().is_some());
        store
            .update_members("default:x", &[], &["bob".to_string()])
            .await
            .unwrap();
        assert!(store.members("default:x").await.unwrap().is_empty());
        assert_eq!(store.calls(None, 10).await.unwrap(), vec!["default:x"]);
    }
}
