//! A received video frame as the page's binary message (docs/call-media.md): a 16-byte
//! header, the track sid, then the encoded frame. The frame stays encoded: the page decodes
//! it with WebCodecs, so no pixels cross the bridge.

pub const VIDEO_FRAME: u8 = 1;
pub const CODEC_H264: u8 = 1;
pub const CODEC_VP8: u8 = 2;
const HEADER: usize = 16;

/// The codec byte of a mime type, or `None` for a codec the page is not sent.
pub fn codec_byte(mime: &str) -> Option<u8> {
    if mime.eq_ignore_ascii_case("video/h264") {
        Some(CODEC_H264)
    } else if mime.eq_ignore_ascii_case("video/vp8") {
        Some(CODEC_VP8)
    } else {
        None
    }
}

/// Builds the message. `rtp_time` is in the 90 kHz video clock.
pub fn video_message(
    codec: u8,
    keyframe: bool,
    lost_before: bool,
    rtp_time: u64,
    track_sid: &str,
    frame: &[u8],
) -> Vec<u8> {
    let micros = rtp_time as f64 * 1_000_000.0 / 90_000.0;
    let mut fields = [0; 12];
    fields[..8].copy_from_slice(&micros.to_le_bytes());
    let flags = u8::from(keyframe) | (u8::from(lost_before) << 1);
    message([VIDEO_FRAME, codec, flags], fields, track_sid, frame)
}

/// A page message: `head` (kind, a kind-specific byte, flags), the sid's length, 12 bytes of
/// `fields`, the track sid, then `payload`.
pub(crate) fn message(head: [u8; 3], fields: [u8; 12], track_sid: &str, payload: &[u8]) -> Vec<u8> {
    // A sid longer than a byte can say is cut: sids are short ("TR_" and a few letters).
    let sid = &track_sid.as_bytes()[..track_sid.len().min(255)];
    let mut out = Vec::with_capacity(HEADER + sid.len() + payload.len());
    out.extend_from_slice(&head);
    out.push(sid.len() as u8);
    out.extend_from_slice(&fields);
    out.extend_from_slice(sid);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_carries_what_the_page_reads() {
        let message = video_message(CODEC_VP8, true, false, 90_000 * 3, "TR_abc", b"\x10\x02");
        assert_eq!(&message[..4], &[1, 2, 1, 6]);
        let micros = f64::from_le_bytes(message[4..12].try_into().unwrap());
        assert_eq!(micros, 3_000_000.0);
        assert_eq!(&message[16..22], b"TR_abc");
        assert_eq!(&message[22..], b"\x10\x02");
        let lost = video_message(CODEC_H264, false, true, 0, "T", b"");
        assert_eq!(lost[2], 2);
    }

    #[test]
    fn only_the_page_s_codecs_have_a_byte() {
        assert_eq!(codec_byte("video/H264"), Some(CODEC_H264));
        assert_eq!(codec_byte("video/VP8"), Some(CODEC_VP8));
        assert_eq!(codec_byte("video/AV1"), None);
    }
}
