//! The store under load and on disk, against a coordinator on loopback with a data folder:
//! reads are answered while a write is stuck, and the folder and database are private.

mod support;

use std::time::{Duration, Instant};

use confab_coordinator::store::DB_FILE;
use confab_coordinator::CoordinatorConfig;
use serde_json::json;
use support::*;

#[tokio::test]
async fn reads_are_answered_while_a_long_write_runs() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator_with(CoordinatorConfig {
        data_dir: Some(dir.path().to_owned()),
        ..CoordinatorConfig::default()
    })
    .await;
    let rest = Rest::new(&c);
    let host = c.mint_token("host", None);
    let (status, body) = rest
        .post(
            "/call/default/busy",
            As::User("host", &host),
            json!({"data": {"members": [{"user_id": "fan"}]}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // The readers have been seen before: a token user's first request also records the user
    // (a write), so that no guest can take the id later.
    let readers: Vec<(String, String)> = (0..20)
        .map(|i| {
            let user = format!("reader-{i}");
            let token = c.mint_token(&user, None);
            (user, token)
        })
        .collect();
    for (user, token) in &readers {
        let (status, body) = rest.get("/call/default/busy", As::User(user, token)).await;
        assert_eq!(status, 200, "{body}");
    }

    // Another process holds SQLite's write lock: the coordinator's next write waits on it
    // (busy timeout), as it would behind a long transaction.
    let db = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    db.execute_batch("BEGIN IMMEDIATE; INSERT INTO users (id, role, created_at, updated_at) VALUES ('lock', 'user', 'now', 'now');")
        .unwrap();
    let writer = {
        let rest = Rest::new(&c);
        tokio::spawn(async move {
            rest.post("/guest", As::Public, json!({"user": {"id": "late-guest"}}))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writer.is_finished(), "the write did not wait for the lock");

    // Meanwhile, reads from several clients are answered promptly.
    let started = Instant::now();
    let reads = futures_util::future::join_all(readers.iter().map(|(user, token)| {
        let rest = Rest::new(&c);
        async move { rest.get("/call/default/busy", As::User(user, token)).await }
    }))
    .await;
    let took = started.elapsed();
    for (status, body) in &reads {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["members"][0]["user_id"], "fan", "{body}");
    }
    assert!(took < Duration::from_secs(2), "20 reads took {took:?}");
    assert!(
        !writer.is_finished(),
        "the write finished while the lock was held"
    );

    // The lock goes; the write that waited goes through.
    db.execute_batch("ROLLBACK;").unwrap();
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .expect("the write finishes")
        .unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["id"], "late-guest", "{body}");
    let (status, _) = rest
        .get("/call/default/busy", As::User("host", &host))
        .await;
    assert_eq!(status, 200);
    c.shutdown().await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;

    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("app-data").join("coordinator");
    let c = coordinator_with(CoordinatorConfig {
        data_dir: Some(data_dir.clone()),
        ..CoordinatorConfig::default()
    })
    .await;
    assert_eq!(mode(&data_dir), 0o700, "the data folder");
    assert_eq!(
        mode(&root.path().join("app-data")),
        0o700,
        "a parent it created"
    );
    let db = data_dir.join(DB_FILE);
    assert_eq!(mode(&db), 0o600, "the database");
    for suffix in ["-wal", "-shm"] {
        let extra = data_dir.join(format!("{DB_FILE}{suffix}"));
        if extra.exists() {
            assert_eq!(mode(&extra), 0o600, "{}", extra.display());
        }
    }
    let (status, body) = Rest::new(&c).get("/edges", As::Public).await;
    assert_eq!(status, 200, "{body}");
    c.shutdown().await;

    // A database an older version left readable by others is made private when opened.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = coordinator_with(CoordinatorConfig {
        data_dir: Some(data_dir.clone()),
        ..CoordinatorConfig::default()
    })
    .await;
    assert_eq!(mode(&db), 0o600, "the database after reopening");
    let (status, body) = Rest::new(&c).get("/edges", As::Public).await;
    assert_eq!(status, 200, "{body}");
    c.shutdown().await;
}
