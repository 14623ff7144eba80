//! With no D-Bus session there is no Secret Service: the error says so in its own variant, so
//! the app can tell people their sign-in stays in memory only.

use confab_credentials::{Backend, Credential, Keychain, KeychainError, RememberedSignIn};

#[test]
fn without_a_session_bus_the_keychain_is_reported_unavailable() {
    // This test binary is its own process: changing its environment touches no other test.
    std::env::set_var(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/confab-no-bus",
    );
    let keychain = Keychain::new("dev.confab.test.nobus");
    let err = keychain.probe().unwrap_err();
    assert!(matches!(err, KeychainError::Unavailable(_)), "{err:?}");
    assert_eq!(err.code(), "no_keychain");
    let sign_in = RememberedSignIn {
        backend: Backend::Local,
        user_id: "a".into(),
        name: None,
        credential: Credential::Token {
            token: "t0ken.secret.x".into(),
        },
    };
    let err = keychain.remember(&sign_in).unwrap_err();
    assert!(matches!(err, KeychainError::Unavailable(_)));
    assert!(!err.to_string().contains("t0ken"));
}
