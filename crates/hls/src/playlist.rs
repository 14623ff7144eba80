//! The live media playlist and the file names it uses.

use std::collections::VecDeque;
use std::time::Duration;

use crate::CmafSegment;

/// `seg-<n>.m4s`
pub fn segment_name(sequence: u64) -> String {
    format!("seg-{sequence}.m4s")
}

/// `init-<n>.mp4`
pub fn init_name(generation: u32) -> String {
    format!("init-{generation}.mp4")
}

/// A file a player may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmafFile {
    Playlist,
    Init(u32),
    Segment(u64),
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    (!s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl CmafFile {
    pub fn parse(name: &str) -> Option<Self> {
        if name == "playlist.m3u8" {
            return Some(CmafFile::Playlist);
        }
        if let Some(n) = name
            .strip_prefix("init-")
            .and_then(|n| n.strip_suffix(".mp4"))
        {
            return digits(n).map(CmafFile::Init);
        }
        let n = name.strip_prefix("seg-")?.strip_suffix(".m4s")?;
        digits(n).map(CmafFile::Segment)
    }
}

struct Entry {
    sequence: u64,
    duration: Duration,
    generation: u32,
}

/// A sliding window of the latest segments.
pub struct CmafPlaylist {
    window: usize,
    entries: VecDeque<Entry>,
    /// Discontinuities that slid out of the window (EXT-X-DISCONTINUITY-SEQUENCE).
    discontinuities_gone: u64,
    ended: bool,
}

impl CmafPlaylist {
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            entries: VecDeque::new(),
            discontinuities_gone: 0,
            ended: false,
        }
    }

    pub fn add(&mut self, segment: &CmafSegment) {
        self.entries.push_back(Entry {
            sequence: segment.sequence,
            duration: segment.duration,
            generation: segment.init_generation,
        });
        while self.entries.len() > self.window {
            let gone = self.entries.pop_front();
            let next = self.entries.front();
            if let (Some(gone), Some(next)) = (gone, next) {
                if gone.generation != next.generation {
                    self.discontinuities_gone += 1;
                }
            }
        }
    }

    /// No more segments: players stop reloading.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The segment numbers listed.
    pub fn listed(&self) -> Vec<u64> {
        self.entries.iter().map(|e| e.sequence).collect()
    }

    pub fn render(&self) -> String {
        let target = self
            .entries
            .iter()
            .map(|e| e.duration.as_secs_f64().ceil() as u64)
            .max()
            .unwrap_or(1)
            .max(1);
        let first = self.entries.front().map_or(0, |e| e.sequence);
        let mut out = format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-DISCONTINUITY-SEQUENCE:{}\n#EXT-X-INDEPENDENT-SEGMENTS\n",
            self.discontinuities_gone
        );
        let mut generation = None;
        for e in &self.entries {
            if generation != Some(e.generation) {
                if generation.is_some() {
                    out.push_str("#EXT-X-DISCONTINUITY\n");
                }
                out.push_str(&format!("#EXT-X-MAP:URI=\"{}\"\n", init_name(e.generation)));
                generation = Some(e.generation);
            }
            out.push_str(&format!(
                "#EXTINF:{:.3},\n{}\n",
                e.duration.as_secs_f64(),
                segment_name(e.sequence)
            ));
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}
