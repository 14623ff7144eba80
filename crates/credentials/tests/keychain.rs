//! Against the real Secret Service (gnome-keyring in the test session's D-Bus). Ignored by a
//! plain `cargo test`; scripts/test-session.sh runs it with `--include-ignored`.

use confab_credentials::{Backend, Credential, Keychain, RememberedSignIn};

#[test]
#[ignore = "needs an unlocked Secret Service keychain: run inside scripts/test-session.sh"]
fn remember_recall_and_forget_through_the_secret_service() {
    let keychain = Keychain::new(format!("dev.confab.test.{}", std::process::id()));
    keychain.probe().unwrap();
    assert_eq!(keychain.recall().unwrap(), None);
    let sign_in = RememberedSignIn {
        backend: Backend::Stream {
            api_key: "k3y".into(),
            base_url: Some("http://127.0.0.1:1/video".into()),
        },
        user_id: "alice".into(),
        name: Some("Alice".into()),
        credential: Credential::Token {
            token: "header.payload.signature".into(),
        },
    };
    keychain.remember(&sign_in).unwrap();
    assert_eq!(keychain.recall().unwrap(), Some(sign_in.clone()));

    // Another process (the next app start) reads it back: ask the keychain directly.
    let out = std::process::Command::new("secret-tool")
        .args([
            "search",
            "--all",
            "service",
            &format!("dev.confab.test.{}", std::process::id()),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("header.payload.signature"));

    // Remembering again replaces, never adds a second entry.
    let mut other = sign_in.clone();
    other.credential = Credential::TokenUrl {
        url: "http://127.0.0.1:1/api/token".into(),
    };
    keychain.remember(&other).unwrap();
    assert_eq!(keychain.recall().unwrap(), Some(other));

    keychain.forget().unwrap();
    assert_eq!(keychain.recall().unwrap(), None);
    keychain.forget().unwrap();
}
