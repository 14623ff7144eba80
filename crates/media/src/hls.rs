//! Cutting an encoded stream into HLS segments and writing the live playlist (RFC 8216).

use std::collections::VecDeque;
use std::fmt::Write as _;

use crate::ts::{TsWriter, CLOCK_HZ};

/// One finished segment, ready to upload.
#[derive(Debug, Clone)]
pub struct Segment {
    pub sequence: u64,
    pub duration_s: f64,
    pub bytes: Vec<u8>,
}

pub fn segment_name(sequence: u64) -> String {
    format!("seg-{sequence}.ts")
}

/// Starts a new segment at the first keyframe once the current one is long enough, so every
/// segment opens with a keyframe and plays on its own.
pub struct Segmenter {
    ts: TsWriter,
    target_ticks: u64,
    current: Vec<u8>,
    start_pts: Option<u64>,
    last_pts: u64,
    frame_ticks: u64,
    next_sequence: u64,
}

impl Segmenter {
    pub fn new(target_s: f64) -> Self {
        Self {
            ts: TsWriter::new(),
            target_ticks: (target_s * CLOCK_HZ as f64) as u64,
            current: Vec::new(),
            start_pts: None,
            last_pts: 0,
            frame_ticks: CLOCK_HZ / 30,
            next_sequence: 0,
        }
    }

    /// Adds one frame; returns the segment it closed, if any.
    pub fn push(&mut self, annex_b: &[u8], pts: u64, keyframe: bool) -> Option<Segment> {
        let mut closed = None;
        if let Some(start) = self.start_pts {
            if keyframe && pts.saturating_sub(start) >= self.target_ticks {
                closed = self.close(pts);
            }
        }
        if self.start_pts.is_none() {
            if !keyframe {
                return closed; // a segment must open with a keyframe
            }
            self.start_pts = Some(pts);
            self.ts.write_tables(&mut self.current);
        }
        if pts > self.last_pts && self.last_pts > 0 {
            self.frame_ticks = (pts - self.last_pts).clamp(CLOCK_HZ / 240, CLOCK_HZ);
        }
        self.last_pts = pts;
        self.ts
            .write_frame(&mut self.current, annex_b, pts, keyframe);
        closed
    }

    /// Closes the segment in progress (at the end of a broadcast).
    pub fn finish(&mut self) -> Option<Segment> {
        let end = self.last_pts + self.frame_ticks;
        self.close(end)
    }

    fn close(&mut self, end_pts: u64) -> Option<Segment> {
        let start = self.start_pts.take()?;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        Some(Segment {
            sequence,
            duration_s: end_pts.saturating_sub(start) as f64 / CLOCK_HZ as f64,
            bytes: std::mem::take(&mut self.current),
        })
    }
}

/// The live media playlist: a sliding window of the newest segments.
#[derive(Debug, Clone)]
pub struct LivePlaylist {
    window: usize,
    segments: VecDeque<(u64, f64)>,
    ended: bool,
}

impl LivePlaylist {
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            segments: VecDeque::new(),
            ended: false,
        }
    }

    pub fn add(&mut self, segment: &Segment) {
        self.segments
            .push_back((segment.sequence, segment.duration_s));
        while self.segments.len() > self.window {
            self.segments.pop_front();
        }
    }

    /// Marks the broadcast over: players stop reloading and play to the end.
    pub fn end(&mut self) {
        self.ended = true;
    }

    pub fn render(&self) -> String {
        let target = self
            .segments
            .iter()
            .map(|(_, d)| d.ceil() as u64)
            .max()
            .unwrap_or(1)
            .max(1);
        let first = self.segments.front().map_or(0, |(n, _)| *n);
        let mut out = String::new();
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
        );
        for (n, duration) in &self.segments {
            let _ = write!(out, "#EXTINF:{duration:.3},\n{}\n", segment_name(*n));
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_open_on_keyframes_once_long_enough_and_the_playlist_slides() {
        let mut segmenter = Segmenter::new(1.0);
        let mut playlist = LivePlaylist::new(3);
        let mut closed = Vec::new();
        // 30 fps with a keyframe every 15 frames (0.5 s): segments close every 1.0 s.
        assert!(
            segmenter.push(b"\0\0\0\x01\x41p", 3000, false).is_none(),
            "no keyframe yet: dropped"
        );
        for i in 0..150u64 {
            let pts = 90_000 + i * 3000;
            if let Some(s) = segmenter.push(b"\0\0\0\x01\x65frame", pts, i % 15 == 0) {
                playlist.add(&s);
                closed.push(s);
            }
        }
        closed.extend(segmenter.finish());
        assert_eq!(closed.len(), 5);
        for s in &closed {
            assert!((s.duration_s - 1.0).abs() < 1e-9, "{}", s.duration_s);
            assert_eq!(s.bytes.len() % 188, 0);
            assert_eq!(&s.bytes[..1], &[0x47]);
        }
        let text = playlist.render();
        assert!(
            text.starts_with(
                "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:1\n"
            ),
            "{text}"
        );
        assert!(text.contains("#EXTINF:1.000,\nseg-3.ts\n") && !text.contains("seg-0.ts"));
        assert!(!text.contains("ENDLIST"));
        playlist.end();
        assert!(playlist.render().ends_with("#EXT-X-ENDLIST\n"));
    }
}
