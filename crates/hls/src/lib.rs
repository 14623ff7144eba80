//! `confab-hls`: HLS from forwarded WebRTC frames, without re-encoding. H.264 access units
//! (Annex B, as the SFU forwards them) and Opus packets become fMP4 (CMAF) segments: Opus
//! cannot travel in MPEG-TS for hls.js, and fMP4 carries both as they are. The playlist lists
//! an init segment per parameter-set generation (a resolution change makes a new one).
//!
//! Timestamps: video in 90 kHz ticks and audio in 48 kHz samples, on one timeline the caller
//! keeps (the coordinator's packager maps each publisher's RTP clocks onto it).

mod h264;
mod mp4;
mod playlist;

use std::collections::VecDeque;
use std::time::Duration;

pub use h264::{nal_units, parse_sps, SpsInfo};
pub use playlist::{init_name, segment_name, CmafFile, CmafPlaylist};

use mp4::{Sample, AUDIO_TIMESCALE, VIDEO_TIMESCALE};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlsMuxError {
    #[error("the access unit has no NAL units")]
    NoNalUnits,
    #[error("the sequence parameter set cannot be read")]
    BadSps,
    #[error("the Opus packet is empty or its table of contents is invalid")]
    BadOpus,
    #[error("a sample of {0} bytes is too large for a segment")]
    TooLarge(usize),
}

/// Largest frame accepted: far beyond any 1080p keyframe.
const MAX_SAMPLE_BYTES: usize = 4 * 1024 * 1024;
/// A video frame's duration when the next one is not known (30 fps).
const DEFAULT_VIDEO_TICKS: u64 = 3_000;

#[derive(Debug, Clone, Copy)]
pub struct SegmenterConfig {
    /// Segments are cut at the first keyframe after this much video.
    pub target_duration: Duration,
    /// Whether an Opus track is expected (it is declared in the init segment).
    pub audio: bool,
}

/// A media segment (moof + mdat).
#[derive(Debug, Clone)]
pub struct CmafSegment {
    pub sequence: u64,
    pub duration: Duration,
    /// The init segment it needs (`init-<generation>.mp4`).
    pub init_generation: u32,
    pub starts_with_keyframe: bool,
    pub data: Vec<u8>,
}

struct PendingVideo {
    pts: u64,
    data: Vec<u8>,
    keyframe: bool,
}

struct PendingAudio {
    pts: u64,
    data: Vec<u8>,
    duration: u64,
}

/// Cuts frames into segments at keyframes.
pub struct CmafSegmenter {
    config: SegmenterConfig,
    sps: Vec<u8>,
    pps: Vec<u8>,
    init: Option<(u32, Vec<u8>)>,
    /// The SPS and PPS the init segment describes.
    init_sets: Option<(Vec<u8>, Vec<u8>)>,
    generation: u32,
    next_sequence: u64,
    video: Vec<PendingVideo>,
    audio: VecDeque<PendingAudio>,
    /// Where the next audio sample should start, to keep audio decode times continuous.
    last_video_pts: Option<u64>,
    last_video_duration: u64,
    /// Where the audio already in segments ends (48 kHz): a packet that arrives just after
    /// the video cut the segment it belongs to still goes in the next one, not lost.
    audio_until: Option<u64>,
    /// Frames dropped: before the first keyframe with parameter sets, or out of order.
    pub dropped: u64,
}

/// 48 kHz samples in an Opus packet, from its table of contents (RFC 6716, 3.1).
pub fn opus_packet_samples(packet: &[u8]) -> Option<u64> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let per_frame: u64 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames: u64 = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(*packet.get(1)? & 0x3f),
    };
    let total = per_frame * frames;
    // A packet is at most 120 ms.
    (total > 0 && total <= 5_760).then_some(total)
}

impl CmafSegmenter {
    pub fn new(config: SegmenterConfig) -> Self {
        Self {
            config,
            sps: Vec::new(),
            pps: Vec::new(),
            init: None,
            init_sets: None,
            generation: 0,
            next_sequence: 0,
            video: Vec::new(),
            audio: VecDeque::new(),
            last_video_pts: None,
            last_video_duration: DEFAULT_VIDEO_TICKS,
            audio_until: None,
            dropped: 0,
        }
    }

    fn target_ticks(&self) -> u64 {
        (self.config.target_duration.as_secs_f64() * f64::from(VIDEO_TIMESCALE)) as u64
    }

    /// The init segment and its generation, once a keyframe with SPS and PPS was seen.
    pub fn init_segment(&self) -> Option<(u32, &[u8])> {
        self.init.as_ref().map(|(g, bytes)| (*g, bytes.as_slice()))
    }

    /// Whether the segment under way is past its target, so a keyframe would end it.
    pub fn wants_keyframe(&self, now_pts_90k: u64) -> bool {
        self.video
            .first()
            .is_some_and(|first| now_pts_90k.saturating_sub(first.pts) >= self.target_ticks())
    }

    /// One H.264 access unit. Returns the segment a keyframe completed, if any.
    pub fn push_video(
        &mut self,
        annex_b: &[u8],
        pts_90k: u64,
        keyframe: bool,
    ) -> Result<Option<CmafSegment>, HlsMuxError> {
        if annex_b.len() > MAX_SAMPLE_BYTES {
            return Err(HlsMuxError::TooLarge(annex_b.len()));
        }
        let units = h264::nal_units(annex_b);
        if units.is_empty() {
            return Err(HlsMuxError::NoNalUnits);
        }
        let mut sps = None;
        let mut pps = None;
        let mut sample = Vec::with_capacity(annex_b.len() + 16);
        let mut idr = false;
        for unit in &units {
            match h264::nal_type(unit) {
                h264::NAL_SPS => sps = Some(*unit),
                h264::NAL_PPS => pps = Some(*unit),
                h264::NAL_AUD | h264::NAL_SEI => {}
                t => {
                    idr |= t == h264::NAL_IDR;
                    sample.extend_from_slice(&(unit.len() as u32).to_be_bytes());
                    sample.extend_from_slice(unit);
                }
            }
        }
        let keyframe = keyframe || idr;
        if sample.is_empty() {
            // Parameter sets alone: remembered for the keyframe that follows.
            self.remember_parameter_sets(sps, pps)?;
            return Ok(None);
        }
        let new_parameters = self.remember_parameter_sets(sps, pps)?;
        if self.init.is_none() || (new_parameters && keyframe) {
            if !keyframe || self.sps.is_empty() || self.pps.is_empty() {
                self.dropped += 1;
                return Ok(None);
            }
        } else if self.video.is_empty() && !keyframe {
            self.dropped += 1;
            return Ok(None);
        }
        let pts = match self.last_video_pts {
            Some(last) if pts_90k <= last => {
                self.dropped += 1;
                return Ok(None);
            }
            _ => pts_90k,
        };
        let mut done = None;
        let params_changed = keyframe && self.init_is_stale();
        if keyframe && !self.video.is_empty() {
            let long_enough = pts.saturating_sub(self.video[0].pts) >= self.target_ticks();
            if long_enough || params_changed {
                done = self.cut(pts);
            }
        }
        if keyframe && (self.init.is_none() || params_changed) {
            self.make_init()?;
        }
        if let Some(last) = self.last_video_pts {
            self.last_video_duration = (pts - last).min(u64::from(VIDEO_TIMESCALE));
        }
        self.last_video_pts = Some(pts);
        self.video.push(PendingVideo {
            pts,
            data: sample,
            keyframe,
        });
        Ok(done)
    }

    /// Keeps new SPS/PPS; returns whether they differ from the ones the init describes.
    fn remember_parameter_sets(
        &mut self,
        sps: Option<&[u8]>,
        pps: Option<&[u8]>,
    ) -> Result<bool, HlsMuxError> {
        if let Some(sps) = sps {
            parse_sps(sps).ok_or(HlsMuxError::BadSps)?;
            self.sps = sps.to_vec();
        }
        if let Some(pps) = pps {
            self.pps = pps.to_vec();
        }
        Ok(self.init_is_stale())
    }

    /// Whether the kept parameter sets are not the init segment's.
    fn init_is_stale(&self) -> bool {
        self.init_sets
            .as_ref()
            .is_some_and(|(sps, pps)| *sps != self.sps || *pps != self.pps)
    }

    fn make_init(&mut self) -> Result<(), HlsMuxError> {
        let info = parse_sps(&self.sps).ok_or(HlsMuxError::BadSps)?;
        let bytes = mp4::init_segment(&mp4::InitParams {
            sps: &self.sps,
            pps: &self.pps,
            info,
            audio: self.config.audio,
        });
        self.generation += 1;
        self.init = Some((self.generation, bytes));
        self.init_sets = Some((self.sps.clone(), self.pps.clone()));
        Ok(())
    }

    /// One Opus packet. Audio before the first video keyframe is dropped: a segment starts
    /// with video.
    pub fn push_audio(&mut self, opus: &[u8], pts_48k: u64) -> Result<(), HlsMuxError> {
        if !self.config.audio {
            return Ok(());
        }
        if opus.len() > MAX_SAMPLE_BYTES {
            return Err(HlsMuxError::TooLarge(opus.len()));
        }
        let duration = opus_packet_samples(opus).ok_or(HlsMuxError::BadOpus)?;
        let floor = match (self.audio_until, self.video.first()) {
            (Some(until), _) => until,
            (None, Some(first)) => to_audio(first.pts),
            (None, None) => {
                self.dropped += 1;
                return Ok(());
            }
        };
        if pts_48k < floor {
            self.dropped += 1;
            return Ok(());
        }
        if self.audio.back().is_some_and(|last| pts_48k <= last.pts) {
            self.dropped += 1;
            return Ok(());
        }
        self.audio.push_back(PendingAudio {
            pts: pts_48k,
            data: opus.to_vec(),
            duration,
        });
        Ok(())
    }

    /// Ends the segment under way at `end_pts` (video ticks).
    fn cut(&mut self, end_pts: u64) -> Option<CmafSegment> {
        let (generation, _) = self.init.as_ref()?;
        let generation = *generation;
        let video = std::mem::take(&mut self.video);
        let first_pts = video.first()?.pts;
        let mut samples = Vec::with_capacity(video.len());
        for (i, frame) in video.iter().enumerate() {
            let next = video.get(i + 1).map_or(end_pts, |n| n.pts);
            samples.push(Sample {
                duration: next.saturating_sub(frame.pts).max(1) as u32,
                data: frame.data.clone(),
                keyframe: frame.keyframe,
            });
        }
        let audio_end = to_audio(end_pts);
        let mut audio: Vec<PendingAudio> = Vec::new();
        while self.audio.front().is_some_and(|a| a.pts < audio_end) {
            audio.extend(self.audio.pop_front());
        }
        let audio_samples: Vec<Sample> = audio
            .iter()
            .enumerate()
            .map(|(i, a)| {
                // Up to the next packet, so a lost packet leaves no gap in decode times.
                let next = audio.get(i + 1).map_or(a.pts + a.duration, |n| n.pts);
                Sample {
                    duration: next.saturating_sub(a.pts).max(1) as u32,
                    data: a.data.clone(),
                    keyframe: true,
                }
            })
            .collect();
        if let Some(last) = audio.last() {
            self.audio_until = Some(last.pts + last.duration);
        }
        self.next_sequence += 1;
        let sequence = self.next_sequence;
        let mut runs = vec![mp4::Run {
            track: mp4::VIDEO_TRACK,
            base_time: first_pts,
            samples: &samples,
            video: true,
        }];
        if let Some(first_audio) = audio.first() {
            runs.push(mp4::Run {
                track: mp4::AUDIO_TRACK,
                base_time: first_audio.pts,
                samples: &audio_samples,
                video: false,
            });
        }
        let data = mp4::fragment(sequence as u32, &runs);
        Some(CmafSegment {
            sequence,
            duration: Duration::from_secs_f64(
                end_pts.saturating_sub(first_pts) as f64 / f64::from(VIDEO_TIMESCALE),
            ),
            init_generation: generation,
            starts_with_keyframe: samples[0].keyframe,
            data,
        })
    }

    /// Ends the stream: what is buffered becomes the last segment.
    pub fn finish(&mut self) -> Option<CmafSegment> {
        let last = self.video.last()?.pts;
        self.cut(last + self.last_video_duration.max(1))
    }
}

fn to_audio(video_ticks: u64) -> u64 {
    video_ticks * u64::from(AUDIO_TIMESCALE) / u64::from(VIDEO_TIMESCALE)
}

#[cfg(test)]
mod tests;
