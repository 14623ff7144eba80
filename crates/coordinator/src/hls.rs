//! HLS broadcasts, as data: the playlist and last segments the host's app uploaded, whether
//! the broadcast runs, and who watches. Kept in memory (a live broadcast's last segments), like
//! the media servers' state it stands in for. The HTTP side is `api::livestream`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use confab_protocol::HLS_PLAYLIST;

/// Segments kept per broadcast: well beyond any player's live window.
const KEPT_SEGMENTS: usize = 30;
/// Largest upload accepted: a 1 s segment at a high bitrate is well under this.
pub const MAX_UPLOAD_BYTES: usize = 8 * 1024 * 1024;
/// A viewer counts while its player has fetched the playlist this recently.
const VIEWER_WINDOW: Duration = Duration::from_secs(10);
/// Viewers remembered per broadcast, so a flood of ids cannot grow memory without bound.
const MAX_VIEWERS: usize = 100_000;
/// The longest viewer id a player may count itself with.
const MAX_VIEWER_ID_LEN: usize = 64;

/// A file of a broadcast: `playlist.m3u8` or `seg-<n>.ts`; other names are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsFile {
    Playlist,
    Segment(u64),
}

impl HlsFile {
    pub fn parse(name: &str) -> Option<Self> {
        if name == HLS_PLAYLIST {
            return Some(HlsFile::Playlist);
        }
        let n = name.strip_prefix("seg-")?.strip_suffix(".ts")?;
        if n.is_empty() || n.len() > 12 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse().ok().map(HlsFile::Segment)
    }
}

#[derive(Default)]
struct Broadcast {
    playlist: Option<Bytes>,
    segments: BTreeMap<u64, Bytes>,
    /// Set between start_broadcasting and stop_broadcasting.
    running: bool,
    viewers: HashMap<String, Instant>,
}

/// Every call's broadcast, by cid.
#[derive(Default)]
pub struct Broadcasts {
    calls: Mutex<HashMap<String, Broadcast>>,
}

impl Broadcasts {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Broadcast>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<T>(&self, cid: &str, f: impl FnOnce(&mut Broadcast) -> T) -> T {
        f(self.lock().entry(cid.to_owned()).or_default())
    }

    /// The playlist URL while a broadcast runs.
    pub fn playlist_url(&self, base_url: &str, cid: &str) -> Option<String> {
        let running = self.lock().get(cid).is_some_and(|b| b.running);
        running.then(|| {
            format!(
                "{base_url}/hls/{}/{HLS_PLAYLIST}",
                cid.replacen(':', "/", 1)
            )
        })
    }

    /// Players that fetched the playlist within the last 10 s.
    pub fn viewers(&self, cid: &str) -> usize {
        self.lock().get_mut(cid).map_or(0, |b| {
            b.viewers.retain(|_, seen| seen.elapsed() < VIEWER_WINDOW);
            b.viewers.len()
        })
    }

    /// Keeps an uploaded file; old segments beyond the kept window are dropped.
    pub fn store(&self, cid: &str, file: HlsFile, bytes: Bytes) {
        self.with(cid, |b| match file {
            HlsFile::Playlist => b.playlist = Some(bytes),
            HlsFile::Segment(n) => {
                b.segments.insert(n, bytes);
                while b.segments.len() > KEPT_SEGMENTS {
                    b.segments.pop_first();
                }
            }
        });
    }

    pub fn has_playlist(&self, cid: &str) -> bool {
        self.with(cid, |b| b.playlist.is_some())
    }

    pub fn set_running(&self, cid: &str, running: bool) {
        self.with(cid, |b| b.running = running);
    }

    /// A file to serve, if it was uploaded (and, for segments, is still kept).
    pub fn file(&self, cid: &str, file: HlsFile) -> Option<Bytes> {
        let calls = self.lock();
        let broadcast = calls.get(cid)?;
        match file {
            HlsFile::Playlist => broadcast.playlist.clone(),
            HlsFile::Segment(n) => broadcast.segments.get(&n).cloned(),
        }
    }

    /// Counts a player that fetched the playlist with `?viewer=<id>`.
    pub fn count_viewer(&self, cid: &str, viewer: &str) {
        if viewer.is_empty() || viewer.len() > MAX_VIEWER_ID_LEN {
            return;
        }
        self.with(cid, |b| {
            if b.viewers.len() < MAX_VIEWERS {
                b.viewers.insert(viewer.to_owned(), Instant::now());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_playlist_and_numbered_segments_are_files() {
        assert_eq!(HlsFile::parse("playlist.m3u8"), Some(HlsFile::Playlist));
        assert_eq!(HlsFile::parse("seg-12.ts"), Some(HlsFile::Segment(12)));
        for bad in [
            "seg-.ts",
            "seg-x.ts",
            "../playlist.m3u8",
            "seg-1234567890123.ts",
            "",
        ] {
            assert_eq!(HlsFile::parse(bad), None, "{bad}");
        }
    }
}
