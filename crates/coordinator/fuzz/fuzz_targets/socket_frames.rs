//! Any text as a socket frame: the auth-frame parser and the health-check reader must answer
//! with a value or a typed error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // A refusal is always Stream's input error, whatever the garbage.
        if let Err(e) = confab_coordinator::ws::parse_auth_frame(text) {
            assert_eq!(e.code, confab_coordinator::error::codes::INPUT);
            assert_eq!(e.status.as_u16(), 400);
        }
        let _ = confab_coordinator::ws::is_health_check(text);
    }
});
