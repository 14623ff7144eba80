//! Statements several store methods share: reading a user, a call or its members, and
//! writing a member.

use rusqlite::{params, Connection, OptionalExtension};

use serde_json::Value;

use super::{now, CallRecord, MemberRecord, StoreError, UserRecord};

pub(super) fn first_app(conn: &Connection) -> Result<Option<(String, String)>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT api_key, api_secret FROM apps ORDER BY created_at LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

pub(super) fn user_in(conn: &Connection, id: &str) -> Result<Option<UserRecord>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT id, name, image, custom, role, created_at, updated_at FROM users WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, String>(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
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

pub(super) fn call_in(conn: &Connection, cid: &str) -> Result<Option<CallRecord>, StoreError> {
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

pub(super) fn members_in(conn: &Connection, cid: &str) -> Result<Vec<MemberRecord>, StoreError> {
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

pub(super) fn upsert_member(
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
