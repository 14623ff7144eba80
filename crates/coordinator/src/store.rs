//! SQLite storage: apps, users (guests are users with the `guest` role), calls and members.
//!
//! One connection behind a mutex: every statement here is a short indexed read or write, and
//! SQLite serialises writers anyway. Schema changes are numbered migrations tracked in
//! `PRAGMA user_version`.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

/// Each entry moves the schema one version up; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
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

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let conn = Connection::open(data_dir.join("coordinator.sqlite3"))?;
        Self::from_connection(conn)
    }

    pub fn in_memory() -> Result<Self, StoreError> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(mut conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (each write is one
        // statement or transaction), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// The first app stored, if any.
    pub fn app(&self) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT api_key, api_secret FROM apps ORDER BY created_at LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// The app's key and secret: the first one stored, or `create()` stored now.
    pub fn app_or_insert(
        &self,
        create: impl FnOnce() -> (String, String),
    ) -> Result<(String, String), StoreError> {
        let conn = self.conn();
        let existing = conn
            .query_row(
                "SELECT api_key, api_secret FROM apps ORDER BY created_at LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some(app) = existing {
            return Ok(app);
        }
        let (key, secret) = create();
        conn.execute(
            "INSERT INTO apps (api_key, api_secret, created_at) VALUES (?1, ?2, ?3)",
            params![key, secret, now()],
        )?;
        Ok((key, secret))
    }

    /// Stores a given key and secret, replacing the secret if the key exists.
    pub fn put_app(&self, key: &str, secret: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO apps (api_key, api_secret, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(api_key) DO UPDATE SET api_secret = excluded.api_secret",
            params![key, secret, now()],
        )?;
        Ok(())
    }

    pub fn app_secret(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT api_secret FROM apps WHERE api_key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT id, name, image, custom, role, created_at, updated_at FROM users WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get::<_, String>(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()?;
        row.map(
            |(id, name, image, custom, role, created_at, updated_at)| -> Result<_, StoreError> {
                Ok(UserRecord {
                    id,
                    name,
                    image,
                    custom: serde_json::from_str(&custom)?,
                    role,
                    created_at,
                    updated_at,
                })
            },
        )
        .transpose()
    }

    /// Creates the user with `role`, or updates the details given (the role of an existing
    /// user is kept: a client cannot promote itself).
    pub fn upsert_user(
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
        let now = now();
        self.conn().execute(
            "INSERT INTO users (id, name, image, custom, role, created_at, updated_at)
             VALUES (?1, ?2, ?3, COALESCE(?4, '{}'), ?5, ?6, ?6)
             ON CONFLICT(id) DO UPDATE SET
               name = COALESCE(excluded.name, users.name),
               image = COALESCE(excluded.image, users.image),
               custom = COALESCE(?4, users.custom),
               updated_at = CASE WHEN ?2 IS NULL AND ?3 IS NULL AND ?4 IS NULL
                            THEN users.updated_at ELSE excluded.updated_at END",
            params![id, details.name, details.image, custom, role, now],
        )?;
        self.user(id)?
            .ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
    }

    /// Creates a user that must be new. Returns `None`, changing nothing, if the id is taken:
    /// the check and the insert are one statement, so two requests cannot both get it.
    pub fn insert_new_user(
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
        let inserted = self.conn().execute(
            "INSERT OR IGNORE INTO users (id, name, image, custom, role, created_at, updated_at)
             VALUES (?1, ?2, ?3, COALESCE(?4, '{}'), ?5, ?6, ?6)",
            params![id, details.name, details.image, custom, role, now()],
        )?;
        if inserted == 0 {
            return Ok(None);
        }
        self.user(id)
    }

    /// Records a user seen only through its token (REST before any socket), with `role`,
    /// unless the store already knows it. Keeps the id from being taken by a guest.
    pub fn remember_user(&self, id: &str, role: &str) -> Result<(), StoreError> {
        let now = now();
        self.conn().execute(
            "INSERT OR IGNORE INTO users (id, role, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
            params![id, role, now],
        )?;
        Ok(())
    }

    /// How many members a call has.
    pub fn member_count(&self, cid: &str) -> Result<usize, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM members WHERE call_cid = ?1",
            [cid],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub fn call(&self, cid: &str) -> Result<Option<CallRecord>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT cid, type, id, created_by, custom, backstage, created_at, updated_at
                 FROM calls WHERE cid = ?1",
                [cid],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get::<_, String>(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )
            .optional()?;
        row.map(
            |(cid, call_type, id, created_by, custom, backstage, created_at, updated_at)| {
                Ok(CallRecord {
                    cid,
                    call_type,
                    id,
                    created_by,
                    custom: serde_json::from_str(&custom)?,
                    backstage,
                    created_at,
                    updated_at,
                })
            },
        )
        .transpose()
    }

    /// Creates a call and its first members in one transaction. Returns false if it existed.
    pub fn create_call(
        &self,
        call: &CallRecord,
        members: &[(String, String, Value)],
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
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
            for (user_id, role, custom) in members {
                upsert_member(&tx, &call.cid, user_id, role, custom)?;
            }
        }
        tx.commit()?;
        Ok(inserted)
    }

    pub fn set_backstage(&self, cid: &str, backstage: bool) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE calls SET backstage = ?2, updated_at = ?3 WHERE cid = ?1",
            params![cid, backstage, now()],
        )?;
        Ok(())
    }

    pub fn members(&self, cid: &str) -> Result<Vec<MemberRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT user_id, role, custom, created_at, updated_at FROM members
             WHERE call_cid = ?1 ORDER BY created_at, user_id",
        )?;
        let rows = stmt.query_map([cid], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut members = Vec::new();
        for row in rows {
            let (user_id, role, custom, created_at, updated_at) = row?;
            members.push(MemberRecord {
                user_id,
                role,
                custom: serde_json::from_str(&custom)?,
                created_at,
                updated_at,
            });
        }
        Ok(members)
    }

    /// Adds or updates members and removes others, in one transaction.
    pub fn update_members(
        &self,
        cid: &str,
        upserts: &[(String, String, Value)],
        removals: &[String],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (user_id, role, custom) in upserts {
            upsert_member(&tx, cid, user_id, role, custom)?;
        }
        for user_id in removals {
            tx.execute(
                "DELETE FROM members WHERE call_cid = ?1 AND user_id = ?2",
                params![cid, user_id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Calls whose cid is in `cids` (all calls when `None`), newest first.
    pub fn calls(&self, cids: Option<&[String]>, limit: usize) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
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
                let mut stmt =
                    conn.prepare_cached("SELECT cid FROM calls ORDER BY created_at DESC LIMIT ?1")?;
                for cid in stmt.query_map([limit as i64], |r| r.get(0))? {
                    out.push(cid?);
                }
            }
        }
        Ok(out)
    }
}

fn upsert_member(
    tx: &rusqlite::Transaction<'_>,
    cid: &str,
    user_id: &str,
    role: &str,
    custom: &Value,
) -> Result<(), StoreError> {
    let now = now();
    // A member must be a user; unknown ids become users with the default role.
    tx.execute(
        "INSERT OR IGNORE INTO users (id, role, created_at, updated_at) VALUES (?1, 'user', ?2, ?2)",
        params![user_id, now],
    )?;
    tx.execute(
        "INSERT INTO members (call_cid, user_id, role, custom, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT(call_cid, user_id) DO UPDATE SET role = excluded.role,
           custom = excluded.custom, updated_at = excluded.updated_at",
        params![cid, user_id, role, serde_json::to_string(custom)?, now],
    )?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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

/// RFC 3339 with milliseconds, as Stream formats timestamps.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_survives_reopening_and_migrations_are_versioned() {
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
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.app_secret("key").unwrap().as_deref(), Some("secret"));
        assert_eq!(
            store.user("alice").unwrap().unwrap().name.as_deref(),
            Some("Alice")
        );
    }

    #[test]
    fn a_newer_schema_is_refused_not_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("coordinator.sqlite3")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn upsert_keeps_the_role_and_unset_fields() {
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
            .unwrap();
        let user = store
            .upsert_user("g", &UserDetails::default(), "admin")
            .unwrap();
        assert_eq!(user.role, "guest");
        assert_eq!(user.name.as_deref(), Some("Guest"));
        assert_eq!(user.custom, json!({"a": 1}));
    }

    #[test]
    fn calls_and_members() {
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
        assert!(store.create_call(&call, &members).unwrap());
        assert!(!store.create_call(&call, &[]).unwrap());
        assert_eq!(store.members("default:x").unwrap()[0].user_id, "bob");
        // Members become users.
        assert!(store.user("bob").unwrap().is_some());
        store
            .update_members("default:x", &[], &["bob".to_string()])
            .unwrap();
        assert!(store.members("default:x").unwrap().is_empty());
        assert_eq!(store.calls(None, 10).unwrap(), vec!["default:x"]);
    }
}
