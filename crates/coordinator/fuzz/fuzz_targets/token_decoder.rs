//! Any bytes as a token: verification must return a typed error or claims, never panic, and
//! must never accept a token it did not sign.
#![no_main]

use confab_coordinator::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::new("fuzz-secret");
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(claims) = key.verify(text, 1_800_000_000) {
            // Only a token this key signed verifies: re-signing the claims must give a token
            // that verifies to the same claims.
            let resigned = key.sign(&claims);
            assert_eq!(key.verify(&resigned, 1_800_000_000).ok(), Some(claims));
        }
        let _ = key.verify(text, i64::MAX);
        let _ = key.verify(text, i64::MIN);
    }
});
