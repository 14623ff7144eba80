//! Synthetic encoded frames for tests and benchmarks: each carries its sequence number, its
//! capture time and a checksum in its payload, wrapped so the codec's packetizer treats it
//! like the real thing (an Annex B access unit for H.264, a VP8 frame tag for VP8).
//!
//! The body is printable ASCII, so it never contains the zero bytes an H.264 start code is
//! made of, and a receiver can check that a frame arrived whole and which one it is.

use std::time::Duration;

use super::VideoCodec;

/// What a synthetic frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStamp {
    pub seq: u64,
    /// Microseconds since the Unix epoch when the frame was made (for latency).
    pub sent_at_micros: u64,
}

fn body(stamp: FrameStamp, size: usize) -> Vec<u8> {
    let head = format!(
        "CFB1 seq={:012} at={:016} ",
        stamp.seq, stamp.sent_at_micros
    );
    let mut out = head.into_bytes();
    // Filler derived from the sequence number, so a frame spliced from two others fails.
    let mut state = stamp
        .seq
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while out.len() + 9 < size {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        out.push(b'a' + ((state >> 33) % 26) as u8);
    }
    let sum = checksum(&out);
    out.extend_from_slice(format!(" {sum:08x}").as_bytes());
    out
}

fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x01000193)
    })
}

/// A video frame of about `size` bytes.
pub fn video_frame(codec: VideoCodec, stamp: FrameStamp, keyframe: bool, size: usize) -> Vec<u8> {
    let body = body(stamp, size.max(64));
    match codec {
        VideoCodec::H264 => {
            // Start code, then a NAL header: IDR slice (5) or non-IDR slice (1).
            let mut out = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
            out.extend_from_slice(&body);
            out
        }
        VideoCodec::Vp8 => {
            // Frame tag bit 0: 0 for a key frame, 1 otherwise (RFC 6386 9.1).
            let mut out = vec![if keyframe { 0x50 } else { 0x51 }];
            out.extend_from_slice(&body);
            out
        }
    }
}

/// An audio frame (20 ms of "Opus").
pub fn audio_frame(stamp: FrameStamp, size: usize) -> Vec<u8> {
    body(stamp, size.max(48))
}

/// Reads a synthetic frame back: its stamp, if the payload arrived whole.
pub fn read_frame(data: &[u8]) -> Option<FrameStamp> {
    let start = data.windows(4).position(|w| w == b"CFB1")?;
    let text = std::str::from_utf8(&data[start..]).ok()?;
    let (content, sum) = text.rsplit_once(' ')?;
    if u32::from_str_radix(sum, 16).ok()? != checksum(content.as_bytes()) {
        return None;
    }
    let mut parts = content.split(' ');
    parts.next()?;
    let seq = parts.next()?.strip_prefix("seq=")?.parse().ok()?;
    let sent_at_micros = parts.next()?.strip_prefix("at=")?.parse().ok()?;
    Some(FrameStamp {
        seq,
        sent_at_micros,
    })
}

/// Microseconds since the Unix epoch, for stamps.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_and_damage_is_caught() {
        let stamp = FrameStamp {
            seq: 42,
            sent_at_micros: 7,
        };
        for codec in [VideoCodec::H264, VideoCodec::Vp8] {
            let frame = video_frame(codec, stamp, true, 5000);
            assert!(frame.len() >= 4990);
            assert_eq!(read_frame(&frame), Some(stamp));
            let mut broken = frame.clone();
            let mid = broken.len() / 2;
            broken[mid] ^= 1;
            assert_eq!(read_frame(&broken), None);
            assert_eq!(read_frame(&frame[..frame.len() - 100]), None);
        }
        let h264 = video_frame(VideoCodec::H264, stamp, false, 3000);
        assert!(!h264[4..].windows(3).any(|w| w == [0, 0, 1]));
        assert_eq!(read_frame(&audio_frame(stamp, 100)), Some(stamp));
    }
}
