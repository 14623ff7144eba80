//! Any bytes as a signal frame and as a join request: both decoders must return a request or
//! a typed error, never panic, and must refuse anything over their size limit before reading
//! it. The bytes are also tried base64url-encoded as the join request, so the fuzzer reaches
//! its protobuf and gzip layers, not only the base64 check.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use confab_sfu::signal::{decode_join_request, decode_signal_request, DecodeError};
use libfuzzer_sys::fuzz_target;

/// The SFU's default limit, and a small one so the limit checks run on most inputs.
const LIMITS: [usize; 2] = [256 * 1024, 64];

fuzz_target!(|data: &[u8]| {
    for limit in LIMITS {
        let frame = decode_signal_request(data, limit);
        if data.len() > limit {
            assert_eq!(frame.err(), Some(DecodeError::TooLarge(limit)));
        }
        if let Ok(text) = std::str::from_utf8(data) {
            let join = decode_join_request(text, limit);
            if text.len() > limit * 4 / 3 + 4 {
                assert_eq!(join.err(), Some(DecodeError::TooLarge(limit)));
            }
        }
        let _ = decode_join_request(&URL_SAFE_NO_PAD.encode(data), limit);
    }
});
