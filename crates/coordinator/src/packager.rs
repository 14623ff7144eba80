//! HLS from the SFU: while a livestream broadcasts, one task per call taps the embedded SFU's
//! room, repackages the host's forwarded H.264 and Opus as fMP4 segments (no second encode,
//! no transcode) and keeps them, with the playlist, in [`crate::hls::Broadcasts`], where
//! viewers fetch them as they fetched the host's uploads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use confab_hls::{CmafPlaylist, CmafSegment, CmafSegmenter, SegmenterConfig};
use confab_sfu::{RoomTap, Sfu, TapCodec, TapFrame, TapKind};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::hls::{Broadcasts, Budget, HlsFile};

/// Segment length asked for: the host sends a keyframe every 3 s by itself; the packager
/// asks for one each second so viewers are a few seconds behind, not ten.
pub const SEGMENT_TARGET: Duration = Duration::from_secs(1);
/// Segments a playlist lists.
const PLAYLIST_WINDOW: usize = 6;
/// Video ticks per second, and audio samples.
const VIDEO_HZ: u64 = 90_000;
const AUDIO_HZ: u64 = 48_000;

/// What a packager has done so far, for the start handler and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackagerProgress {
    pub segments: u64,
    pub frames_skipped: u64,
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    progress: watch::Receiver<PackagerProgress>,
}

/// The running packagers, by call cid.
#[derive(Default)]
pub struct Packagers {
    running: Mutex<HashMap<String, Running>>,
}

impl Packagers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_running(&self, cid: &str) -> bool {
        self.lock().get(cid).is_some_and(|r| !r.task.is_finished())
    }

    /// Starts packaging `cid`'s room (once: a running packager is kept). Returns its progress.
    pub async fn start(
        &self,
        sfu: &Sfu,
        broadcasts: Arc<Broadcasts>,
        budget: Budget,
        cid: &str,
    ) -> watch::Receiver<PackagerProgress> {
        if let Some(running) = self.lock().get(cid).filter(|r| !r.task.is_finished()) {
            return running.progress.clone();
        }
        let tap = sfu.tap(cid).await;
        let (stop, stopped) = oneshot::channel();
        let (progress_tx, progress) = watch::channel(PackagerProgress::default());
        let packager = Packager {
            cid: cid.to_owned(),
            broadcasts,
            budget,
            segmenter: CmafSegmenter::new(SegmenterConfig {
                target_duration: SEGMENT_TARGET,
                audio: true,
            }),
            playlist: CmafPlaylist::new(PLAYLIST_WINDOW),
            timeline: Timeline::default(),
            stored_init: None,
            progress: progress_tx,
        };
        let task = tokio::spawn(packager.run(tap, stopped));
        self.lock().insert(
            cid.to_owned(),
            Running {
                stop,
                task,
                progress: progress.clone(),
            },
        );
        progress
    }

    /// Stops `cid`'s packager after it wrote its last segment and the ended playlist.
    pub async fn stop(&self, cid: &str) {
        let Some(running) = self.lock().remove(cid) else {
            return;
        };
        let _ = running.stop.send(());
        let mut task = running.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }

    /// Stops every packager at once (the coordinator is stopping).
    pub fn abort_all(&self) {
        for (_, running) in self.lock().drain() {
            running.task.abort();
        }
    }
}

/// Maps each publisher's RTP clocks onto one timeline that starts at the first frame and
/// never goes back, also across a host's rejoin (new clocks, new random offsets).
#[derive(Default)]
struct Timeline {
    start: Option<Instant>,
    publisher: String,
    /// The video track on the timeline: a switch (to a shared screen and back) brings a new
    /// RTP clock, anchored where the timeline is.
    video_track: String,
    video: Option<Anchor>,
    audio: Option<Anchor>,
    /// The latest time given out, in microseconds: a rejoin continues after it.
    last_us: u64,
}

#[derive(Clone, Copy)]
struct Anchor {
    rtp: u64,
    /// Where that RTP time sits on the timeline, in microseconds.
    at_us: u64,
}

impl Timeline {
    /// The frame's time on the timeline in its track's units (90 kHz or 48 kHz), or `None`
    /// for a frame from before its anchor (reordered across a restart).
    fn place(&mut self, frame: &TapFrame) -> Option<u64> {
        let start = *self.start.get_or_insert(frame.arrived);
        if frame.publisher != self.publisher {
            // A new session of the host: its clocks start again from where we are.
            self.publisher = frame.publisher.clone();
            self.video = None;
            self.audio = None;
        }
        if frame.kind == TapKind::Video && frame.track_sid != self.video_track {
            self.video_track = frame.track_sid.clone();
            self.video = None;
        }
        let arrived_us = frame.arrived.saturating_duration_since(start).as_micros() as u64;
        let rate = frame.clock_rate.max(1);
        let last_us = self.last_us;
        let anchor = match frame.kind {
            TapKind::Video => &mut self.video,
            TapKind::Audio => &mut self.audio,
        };
        let anchor = *anchor.get_or_insert(Anchor {
            rtp: frame.rtp_time,
            at_us: arrived_us.max(last_us),
        });
        let since = frame.rtp_time.checked_sub(anchor.rtp)?;
        self.last_us = self
            .last_us
            .max(anchor.at_us + since.saturating_mul(1_000_000) / rate);
        let hz = match frame.kind {
            TapKind::Video => VIDEO_HZ,
            TapKind::Audio => AUDIO_HZ,
        };
        // In the track's own units from the anchor on, so RTP steps stay exact.
        Some(anchor.at_us.saturating_mul(hz) / 1_000_000 + since.saturating_mul(hz) / rate)
    }
}

struct Packager {
    cid: String,
    broadcasts: Arc<Broadcasts>,
    budget: Budget,
    segmenter: CmafSegmenter,
    playlist: CmafPlaylist,
    timeline: Timeline,
    stored_init: Option<u32>,
    progress: watch::Sender<PackagerProgress>,
}

impl Packager {
    async fn run(mut self, mut tap: RoomTap, mut stop: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last_video_pts = 0;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                frame = tap.next() => match frame {
                    Some(frame) => {
                        if let Some(pts) = self.frame(frame) {
                            last_video_pts = pts;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if self.segmenter.wants_keyframe(last_video_pts) {
                        tap.request_keyframe().await;
                    }
                }
            }
        }
        if let Some(segment) = self.segmenter.finish() {
            self.keep(segment);
        }
        self.playlist.end();
        self.store_playlist();
    }

    /// Takes one tapped frame; returns the video time it placed, if it was video.
    fn frame(&mut self, frame: TapFrame) -> Option<u64> {
        let supported = matches!(
            (frame.kind, frame.codec),
            (TapKind::Video, TapCodec::H264) | (TapKind::Audio, TapCodec::Opus)
        );
        if !supported {
            // A browser host's VP8 has no place in this HLS: its viewers use WebRTC.
            self.skipped();
            return None;
        }
        let Some(pts) = self.timeline.place(&frame) else {
            self.skipped();
            return None;
        };
        match frame.kind {
            TapKind::Audio => {
                if self.segmenter.push_audio(&frame.data, pts).is_err() {
                    self.skipped();
                }
                None
            }
            TapKind::Video => {
                match self.segmenter.push_video(&frame.data, pts, frame.keyframe) {
                    Ok(Some(segment)) => self.keep(segment),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(target: "coordinator", cid = %self.cid, error = %e, "a forwarded frame could not be packaged");
                        self.skipped();
                    }
                }
                Some(pts)
            }
        }
    }

    fn skipped(&self) {
        self.progress.send_modify(|p| p.frames_skipped += 1);
    }

    /// Stores a segment (and a new init segment first), then the playlist that lists it.
    fn keep(&mut self, segment: CmafSegment) {
        if self.stored_init != Some(segment.init_generation) {
            if let Some((generation, init)) = self.segmenter.init_segment() {
                let init = Bytes::copy_from_slice(init);
                if self.store(HlsFile::Init(generation), init) {
                    self.stored_init = Some(generation);
                }
            }
        }
        let data = Bytes::from(segment.data.clone());
        if self.store(HlsFile::Fragment(segment.sequence), data) {
            self.playlist.add(&segment);
            self.store_playlist();
            self.progress.send_modify(|p| p.segments += 1);
        }
    }

    fn store_playlist(&self) {
        let text = Bytes::from(self.playlist.render());
        self.store(HlsFile::Playlist, text);
    }

    fn store(&self, file: HlsFile, bytes: Bytes) -> bool {
        match self.broadcasts.store(&self.cid, file, bytes, &self.budget) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(target: "coordinator", cid = %self.cid, error = %e, "an HLS file was not kept");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(publisher: &str, kind: TapKind, rtp: u64, arrived: Instant) -> TapFrame {
        TapFrame {
            publisher: publisher.into(),
            track_sid: match kind {
                TapKind::Video => "TR_camera".into(),
                TapKind::Audio => "TR_microphone".into(),
            },
            kind,
            codec: match kind {
                TapKind::Video => TapCodec::H264,
                TapKind::Audio => TapCodec::Opus,
            },
            data: Arc::from(Vec::new()),
            rtp_time: rtp,
            clock_rate: match kind {
                TapKind::Video => 90_000,
                TapKind::Audio => 48_000,
            },
            arrived,
            keyframe: false,
        }
    }

    #[test]
    fn tracks_share_one_timeline_from_their_arrival() {
        let t0 = Instant::now();
        let mut timeline = Timeline::default();
        let v = |rtp, ms| frame("PA_1", TapKind::Video, rtp, t0 + Duration::from_millis(ms));
        let a = |rtp, ms| frame("PA_1", TapKind::Audio, rtp, t0 + Duration::from_millis(ms));
        assert_eq!(timeline.place(&v(1_000_000, 0)), Some(0));
        // Audio starts 100 ms later with its own random RTP offset.
        assert_eq!(timeline.place(&a(777, 100)), Some(4_800));
        // Later frames follow their RTP clocks, not their (jittery) arrival.
        assert_eq!(timeline.place(&v(1_000_000 + 3_000, 45)), Some(3_000));
        assert_eq!(timeline.place(&a(777 + 960, 190)), Some(4_800 + 960));
        // Older than the anchor: dropped, not placed in the past.
        assert_eq!(timeline.place(&v(999_000, 50)), None);
    }

    #[test]
    fn a_rejoined_host_continues_after_the_last_time_given() {
        let t0 = Instant::now();
        let mut timeline = Timeline::default();
        let at = |ms| t0 + Duration::from_millis(ms);
        timeline.place(&frame("PA_1", TapKind::Video, 0, at(0)));
        assert_eq!(
            timeline.place(&frame("PA_1", TapKind::Video, 90_000 * 5, at(100))),
            Some(90_000 * 5)
        );
        // The new session arrives at 2 s of wall time, but 5 s of media were given out.
        let placed = timeline
            .place(&frame("PA_2", TapKind::Video, 42, at(2_000)))
            .unwrap();
        assert_eq!(placed, 90_000 * 5);
        assert_eq!(
            timeline.place(&frame("PA_2", TapKind::Video, 42 + 9_000, at(2_100))),
            Some(90_000 * 5 + 9_000)
        );
    }

    #[test]
    fn a_switch_to_a_shared_screen_and_back_continues_the_video_timeline() {
        let t0 = Instant::now();
        let mut timeline = Timeline::default();
        let at = |ms| t0 + Duration::from_millis(ms);
        let on = |track: &str, rtp, ms| {
            let mut f = frame("PA_1", TapKind::Video, rtp, at(ms));
            f.track_sid = track.into();
            f
        };
        timeline.place(&on("TR_camera", 5_000, 0));
        assert_eq!(
            timeline.place(&on("TR_camera", 5_000 + 90_000, 1_000)),
            Some(90_000)
        );
        // The screen's clock has another offset: it starts where its first frame arrives.
        assert_eq!(
            timeline.place(&on("TR_screen", 123_456, 1_500)),
            Some(90_000 * 3 / 2)
        );
        assert_eq!(
            timeline.place(&on("TR_screen", 123_456 + 6_000, 1_566)),
            Some(90_000 * 3 / 2 + 6_000)
        );
        // Back to the camera (its clock ran on meanwhile): after the screen's last frame.
        let back = timeline
            .place(&on("TR_camera", 5_000 + 90_000 * 3, 3_000))
            .unwrap();
        assert_eq!(back, 90_000 * 3);
    }
}
