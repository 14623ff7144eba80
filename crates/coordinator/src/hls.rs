//! HLS broadcasts, as data: the playlist and last segments the host's app uploaded, whether
//! the broadcast runs, and who watches. Kept in memory (a live broadcast's last segments), like
//! the media servers' state it stands in for, within a budget: all broadcasts together, and
//! each one's share of it. The HTTP side is `api::livestream`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use confab_protocol::HLS_PLAYLIST;

/// Segments kept per broadcast: well beyond any player's live window.
const KEPT_SEGMENTS: usize = 30;
/// Largest playlist: a live window of segment lines is a few KB.
pub const MAX_PLAYLIST_BYTES: usize = 256 * 1024;
/// A viewer counts while its player has fetched the playlist this recently.
const VIEWER_WINDOW: Duration = Duration::from_secs(10);
/// Viewers remembered per broadcast, so a flood of ids cannot grow memory without bound.
const MAX_VIEWERS: usize = 100_000;
/// The longest viewer id a player may count itself with.
const MAX_VIEWER_ID_LEN: usize = 64;

/// The memory rules broadcasts keep to (from the coordinator's `Limits`).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// All broadcasts together.
    pub total_bytes: usize,
    /// One broadcast.
    pub call_bytes: usize,
    /// One upload.
    pub upload_bytes: usize,
    /// How long a stopped broadcast stays served, and kept, before its memory is freed.
    pub ended_grace: Duration,
}

/// Why an upload was not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlsError {
    #[error("the upload is {size} bytes: at most {max} are accepted")]
    TooLarge { size: usize, max: usize },
    #[error("no room for {size} more bytes: the broadcasts' memory is full with segments players still list")]
    NoRoom { size: usize },
}

/// A file of a broadcast: `playlist.m3u8`, an uploaded `seg-<n>.ts`, or what the SFU's
/// packager makes: `init-<n>.mp4` and `seg-<n>.m4s`. Other names are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsFile {
    Playlist,
    Segment(u64),
    Init(u32),
    Fragment(u64),
}

impl HlsFile {
    pub fn parse(name: &str) -> Option<Self> {
        if name == HLS_PLAYLIST {
            return Some(HlsFile::Playlist);
        }
        if let Some(n) = name
            .strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".ts"))
        {
            return number(n).map(HlsFile::Segment);
        }
        match confab_hls::CmafFile::parse(name)? {
            confab_hls::CmafFile::Playlist => Some(HlsFile::Playlist),
            confab_hls::CmafFile::Init(n) => Some(HlsFile::Init(n)),
            confab_hls::CmafFile::Segment(n) => Some(HlsFile::Fragment(n)),
        }
    }

    /// The segment number, for either kind of segment.
    fn segment(self) -> Option<u64> {
        match self {
            HlsFile::Segment(n) | HlsFile::Fragment(n) => Some(n),
            HlsFile::Playlist | HlsFile::Init(_) => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            HlsFile::Playlist => "application/vnd.apple.mpegurl",
            HlsFile::Segment(_) => "video/mp2t",
            HlsFile::Init(_) => "video/mp4",
            HlsFile::Fragment(_) => "video/iso.segment",
        }
    }
}

fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment numbers a playlist lists (lines that name `seg-<n>.ts` or `seg-<n>.m4s`, with
/// or without a path or query).
fn listed_segments(playlist: &[u8]) -> BTreeSet<u64> {
    String::from_utf8_lossy(playlist)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let name = l.split('?').next().unwrap_or(l);
            let name = name.rsplit('/').next().unwrap_or(name);
            HlsFile::parse(name).and_then(HlsFile::segment)
        })
        .collect()
}

#[derive(Default)]
struct Broadcast {
    playlist: Option<Bytes>,
    /// The packager's init segments by generation (a resolution change makes a new one).
    inits: BTreeMap<u32, Bytes>,
    /// The host's app uploaded the playlist (MPEG-TS segments it encoded itself).
    uploaded: bool,
    /// What the current playlist lists: kept over older segments when room is short.
    listed: BTreeSet<u64>,
    segments: BTreeMap<u64, Bytes>,
    /// Playlist and segments, in bytes.
    bytes: usize,
    /// Set between start_broadcasting and stop_broadcasting.
    running: bool,
    /// When it last stopped: served for the grace period after, then freed.
    ended_at: Option<Instant>,
    /// Viewer id -> the address key that counted it, and when it last fetched.
    viewers: HashMap<String, (IpAddr, Instant)>,
}

impl Broadcast {
    fn ended_before(&self, grace: Duration) -> bool {
        !self.running && self.ended_at.is_some_and(|t| t.elapsed() >= grace)
    }

    /// The oldest segment the playlist does not list, other than `keep`.
    fn oldest_unlisted(&self, keep: Option<u64>) -> Option<u64> {
        self.segments
            .keys()
            .copied()
            .find(|n| !self.listed.contains(n) && Some(*n) != keep)
    }

    /// Drops a segment; returns the bytes freed.
    fn evict(&mut self, n: u64) -> usize {
        let freed = self.segments.remove(&n).map_or(0, |b| b.len());
        self.bytes -= freed;
        freed
    }
}

#[derive(Default)]
struct Inner {
    calls: HashMap<String, Broadcast>,
    /// Every broadcast's `bytes`, summed.
    total: usize,
}

impl Inner {
    /// Frees broadcasts that stopped longer than the grace period ago.
    fn sweep(&mut self, grace: Duration) {
        let mut freed = 0;
        self.calls.retain(|_, b| {
            let gone = b.ended_before(grace);
            if gone {
                freed += b.bytes;
            }
            !gone
        });
        self.total -= freed;
    }

    /// Frees `need` bytes from broadcasts other than `cid`: first those not running (stopped
    /// or never started), oldest segment first, then segments that running playlists no
    /// longer list. Never a segment a running broadcast's playlist lists.
    fn make_room(&mut self, cid: &str, need: usize, budget: usize) -> bool {
        while self.total + need > budget {
            let idle = self
                .calls
                .iter()
                .filter(|(c, b)| c.as_str() != cid && !b.running)
                .find_map(|(c, b)| b.segments.keys().next().map(|n| (c.clone(), *n)));
            let victim = idle.or_else(|| {
                self.calls
                    .iter()
                    .filter(|(c, _)| c.as_str() != cid)
                    .find_map(|(c, b)| b.oldest_unlisted(None).map(|n| (c.clone(), n)))
            });
            let Some((victim_cid, n)) = victim else {
                return false;
            };
            if let Some(b) = self.calls.get_mut(&victim_cid) {
                self.total -= b.evict(n);
            }
        }
        true
    }
}

/// Every call's broadcast, by cid.
#[derive(Default)]
pub struct Broadcasts {
    inner: Mutex<Inner>,
}

impl Broadcasts {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The playlist URL while a broadcast runs.
    pub fn playlist_url(&self, base_url: &str, cid: &str) -> Option<String> {
        let running = self.lock().calls.get(cid).is_some_and(|b| b.running);
        running.then(|| {
            format!(
                "{base_url}/hls/{}/{HLS_PLAYLIST}",
                cid.replacen(':', "/", 1)
            )
        })
    }

    /// Players that fetched the playlist within the last 10 s.
    pub fn viewers(&self, cid: &str) -> usize {
        self.lock().calls.get_mut(cid).map_or(0, |b| {
            b.viewers
                .retain(|_, (_, seen)| seen.elapsed() < VIEWER_WINDOW);
            b.viewers.len()
        })
    }

    /// Keeps an uploaded file within the budget. Room is made by dropping, oldest first,
    /// segments no playlist lists any more (this broadcast's, then idle broadcasts', then
    /// other running ones'); an upload that still does not fit is refused.
    pub fn store(
        &self,
        cid: &str,
        file: HlsFile,
        bytes: Bytes,
        budget: &Budget,
    ) -> Result<(), HlsError> {
        let size = bytes.len();
        let max = match file {
            HlsFile::Playlist => MAX_PLAYLIST_BYTES.min(budget.upload_bytes),
            _ => budget.upload_bytes,
        };
        if size > max || size > budget.call_bytes {
            return Err(HlsError::TooLarge {
                size,
                max: max.min(budget.call_bytes),
            });
        }
        let mut inner = self.lock();
        inner.sweep(budget.ended_grace);
        let inner = &mut *inner;
        let b = inner.calls.entry(cid.to_owned()).or_default();
        let replaced = match file {
            HlsFile::Playlist => b.playlist.as_ref().map_or(0, Bytes::len),
            HlsFile::Init(n) => b.inits.get(&n).map_or(0, Bytes::len),
            HlsFile::Segment(n) | HlsFile::Fragment(n) => b.segments.get(&n).map_or(0, Bytes::len),
        };
        let keep = file.segment();
        // This broadcast's own share first.
        while b.bytes - replaced + size > budget.call_bytes {
            let Some(n) = b.oldest_unlisted(keep) else {
                return Err(HlsError::NoRoom { size });
            };
            inner.total -= b.evict(n);
        }
        let need = size.saturating_sub(replaced);
        if !inner.make_room(cid, need, budget.total_bytes) {
            return Err(HlsError::NoRoom { size });
        }
        let Some(b) = inner.calls.get_mut(cid) else {
            return Err(HlsError::NoRoom { size });
        };
        b.bytes = b.bytes - replaced + size;
        inner.total = inner.total - replaced + size;
        match file {
            HlsFile::Playlist => {
                b.listed = listed_segments(&bytes);
                b.playlist = Some(bytes);
            }
            HlsFile::Init(n) => {
                b.inits.insert(n, bytes);
                // A player that started on the previous one may still fetch it; older ones go.
                while b.inits.len() > 2 {
                    if let Some((_, old)) = b.inits.pop_first() {
                        b.bytes -= old.len();
                        inner.total -= old.len();
                    }
                }
            }
            HlsFile::Segment(n) | HlsFile::Fragment(n) => {
                b.segments.insert(n, bytes);
                while b.segments.len() > KEPT_SEGMENTS {
                    if let Some((_, old)) = b.segments.pop_first() {
                        b.bytes -= old.len();
                        inner.total -= old.len();
                    }
                }
            }
        }
        Ok(())
    }

    pub fn has_playlist(&self, cid: &str) -> bool {
        self.lock()
            .calls
            .get(cid)
            .is_some_and(|b| b.playlist.is_some())
    }

    /// Notes that the host uploads this broadcast itself.
    pub fn mark_uploaded(&self, cid: &str) {
        if let Some(b) = self.lock().calls.get_mut(cid) {
            b.uploaded = true;
        }
    }

    /// Whether the host's app uploaded a playlist (then nothing is packaged for it).
    pub fn has_uploaded_playlist(&self, cid: &str) -> bool {
        self.lock()
            .calls
            .get(cid)
            .is_some_and(|b| b.uploaded && b.playlist.is_some())
    }

    /// Starts or stops a broadcast. A stopped one stays served for `grace`, then is freed.
    pub fn set_running(&self, cid: &str, running: bool, grace: Duration) {
        let mut inner = self.lock();
        inner.sweep(grace);
        if let Some(b) = inner.calls.get_mut(cid) {
            if running {
                b.ended_at = None;
            } else if b.running || b.ended_at.is_none() {
                b.ended_at = Some(Instant::now());
            }
            b.running = running;
        }
    }

    /// Frees what stopped longer than `grace` ago. The server calls it after each stop's
    /// grace period; every upload and start or stop does too.
    pub fn sweep(&self, grace: Duration) {
        self.lock().sweep(grace);
    }

    /// Whether viewers may fetch files: while it runs, and for `grace` after it stopped.
    pub fn servable(&self, cid: &str, grace: Duration) -> bool {
        self.lock()
            .calls
            .get(cid)
            .is_some_and(|b| b.running || b.ended_at.is_some_and(|t| t.elapsed() < grace))
    }

    /// A file to serve, if it was uploaded (and, for segments, is still kept).
    pub fn file(&self, cid: &str, file: HlsFile) -> Option<Bytes> {
        let inner = self.lock();
        let broadcast = inner.calls.get(cid)?;
        match file {
            HlsFile::Playlist => broadcast.playlist.clone(),
            HlsFile::Init(n) => broadcast.inits.get(&n).cloned(),
            HlsFile::Segment(n) | HlsFile::Fragment(n) => broadcast.segments.get(&n).cloned(),
        }
    }

    /// Bytes held by all broadcasts.
    pub fn total_bytes(&self) -> usize {
        self.lock().total
    }

    /// Counts a player that fetched the playlist with `?viewer=<id>`, from the address key
    /// `addr`. One address counts at most `per_address` ids at a time, so nobody can inflate
    /// the count by inventing ids.
    pub fn count_viewer(&self, cid: &str, viewer: &str, addr: IpAddr, per_address: usize) {
        if viewer.is_empty() || viewer.len() > MAX_VIEWER_ID_LEN {
            return;
        }
        let mut inner = self.lock();
        let Some(b) = inner.calls.get_mut(cid) else {
            return;
        };
        let now = Instant::now();
        b.viewers
            .retain(|_, (_, seen)| now.duration_since(*seen) < VIEWER_WINDOW);
        if let Some((known, seen)) = b.viewers.get_mut(viewer) {
            if *known == addr {
                *seen = now;
                return;
            }
        }
        let from_addr = b.viewers.values().filter(|(a, _)| *a == addr).count();
        if from_addr < per_address && b.viewers.len() < MAX_VIEWERS {
            b.viewers.insert(viewer.to_owned(), (addr, now));
        }
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

    fn budget(total: usize, call: usize) -> Budget {
        Budget {
            total_bytes: total,
            call_bytes: call,
            upload_bytes: call,
            ended_grace: Duration::from_secs(60),
        }
    }

    fn playlist(segments: &[u64]) -> Bytes {
        let mut text = String::from("#EXTM3U\n");
        for n in segments {
            text.push_str(&format!("#EXTINF:1.0,\nseg-{n}.ts\n"));
        }
        Bytes::from(text)
    }

    #[test]
    fn playlists_name_their_segments() {
        let listed = listed_segments(b"#EXTM3U\nseg-3.ts\n/x/seg-4.ts?a=1\nother.ts\n#seg-9.ts\n");
        assert_eq!(listed.into_iter().collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn a_broadcast_keeps_to_its_share_and_keeps_listed_segments() {
        let b = Broadcasts::default();
        let limits = budget(10_000, 1_000);
        let seg = || Bytes::from(vec![0x47; 300]);
        b.store("l:a", HlsFile::Playlist, playlist(&[1, 2]), &limits)
            .unwrap();
        for n in 0..4 {
            b.store("l:a", HlsFile::Segment(n), seg(), &limits).unwrap();
        }
        // Segment 0 was not listed: it made room for 3. The listed ones stay.
        assert!(b.file("l:a", HlsFile::Segment(0)).is_none());
        for n in 1..4 {
            assert!(b.file("l:a", HlsFile::Segment(n)).is_some(), "{n}");
        }
        // Once everything kept is listed, there is no room for more.
        b.store("l:a", HlsFile::Playlist, playlist(&[1, 2, 3]), &limits)
            .unwrap();
        assert_eq!(
            b.store("l:a", HlsFile::Segment(4), seg(), &limits),
            Err(HlsError::NoRoom { size: 300 })
        );
        assert!(matches!(
            b.store(
                "l:a",
                HlsFile::Segment(5),
                Bytes::from(vec![0; 1_001]),
                &limits
            ),
            Err(HlsError::TooLarge { .. })
        ));
        assert!(b.total_bytes() <= 1_000);
    }

    #[test]
    fn the_total_budget_takes_from_idle_broadcasts_and_stops_free_memory() {
        let b = Broadcasts::default();
        let limits = budget(1_000, 800);
        let seg = || Bytes::from(vec![0x47; 400]);
        b.store("l:old", HlsFile::Segment(1), seg(), &limits)
            .unwrap();
        b.store("l:old", HlsFile::Segment(2), seg(), &limits)
            .unwrap();
        b.store("l:new", HlsFile::Playlist, playlist(&[1]), &limits)
            .unwrap();
        b.set_running("l:new", true, limits.ended_grace);
        b.store("l:new", HlsFile::Segment(1), seg(), &limits)
            .unwrap();
        assert!(b.total_bytes() <= 1_000);
        assert!(b.file("l:old", HlsFile::Segment(1)).is_none());
        b.set_running("l:new", false, limits.ended_grace);
        assert!(b.servable("l:new", limits.ended_grace));
        b.sweep(Duration::ZERO);
        assert!(!b.servable("l:new", limits.ended_grace));
        assert!(b.file("l:new", HlsFile::Segment(1)).is_none());
    }

    #[test]
    fn one_address_counts_at_most_its_share_of_viewers() {
        let b = Broadcasts::default();
        let limits = budget(1_000, 1_000);
        b.store("l:a", HlsFile::Playlist, playlist(&[]), &limits)
            .unwrap();
        let one = IpAddr::from([10, 0, 0, 1]);
        for n in 0..50 {
            b.count_viewer("l:a", &format!("v{n}"), one, 2);
        }
        assert_eq!(b.viewers("l:a"), 2);
        b.count_viewer("l:a", "w", IpAddr::from([10, 0, 0, 2]), 2);
        assert_eq!(b.viewers("l:a"), 3);
    }
}
