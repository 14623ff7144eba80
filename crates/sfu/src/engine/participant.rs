//! One participant: its peer connection, what it publishes, what it receives, and the state
//! LiveKit clients see (its info, version, speaking and quality).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use livekit_protocol as lk;
use lk::signal_response::Message as Resp;
use str0m::format::Codec;
use str0m::format::CodecExtra;
use str0m::format::PayloadParams;
use str0m::media::{MediaData, MediaKind, MediaTime, Mid, Pt, Rid, Writer};
use str0m::{Candidate, Event, Rtc};

use super::info::{self, response};
use super::{Action, EngineStats};
use crate::sdp::Outgoing;
use crate::token::VideoGrant;
use crate::SignalTx;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ParticipantKey(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IceState {
    Connecting,
    Connected,
    Disconnected,
}

/// A media section the client receives on, filled by one subscription at a time.
pub(crate) struct Slot {
    pub mid: Mid,
    pub kind: MediaKind,
    /// Index into `downtracks`... kept as (publisher, track sid) so removals cannot shift it.
    pub downtrack: Option<(ParticipantKey, String)>,
}

pub(crate) struct PublishedTrack {
    pub cid: String,
    pub kind: MediaKind,
    pub info: lk::TrackInfo,
    pub mid: Option<Mid>,
    /// Simulcast layers seen so far, with when each last carried media.
    pub rids: Vec<Rid>,
    layer_seen: HashMap<Option<Rid>, LayerTiming>,
    last_keyframe_request: HashMap<Option<Rid>, Instant>,
}

/// When a layer last carried a frame, and its usual gap between frames.
#[derive(Debug, Clone, Copy)]
struct LayerTiming {
    last: Instant,
    mean_gap: Duration,
}

/// A layer is taken for stopped after this many of its usual frame gaps without a frame...
const STOPPED_AFTER_GAPS: u32 = 4;
/// ...but not sooner than this (a late frame is not a stopped layer)...
const STOPPED_AFTER_AT_LEAST: Duration = Duration::from_millis(400);
/// ...and not later than this (a publisher that drops a layer, for its bandwidth or CPU, leaves
/// the subscribers on it without a picture until the next layer takes over).
const STOPPED_AFTER_AT_MOST: Duration = Duration::from_millis(1500);

impl LayerTiming {
    fn stopped_after(&self) -> Duration {
        (self.mean_gap * STOPPED_AFTER_GAPS).clamp(STOPPED_AFTER_AT_LEAST, STOPPED_AFTER_AT_MOST)
    }
}

impl PublishedTrack {
    // `layers`, `simulcast`, `stereo` and `disable_dtx` are deprecated in the protocol but
    // still read by livekit-client 2.x.
    #[allow(deprecated)]
    pub fn from_request(request: &lk::AddTrackRequest, sid: String) -> Self {
        let video = request.r#type == lk::TrackType::Video as i32;
        let kind = if video {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        let mime = if video {
            info::video_mime(
                request
                    .simulcast_codecs
                    .first()
                    .map(|c| c.codec.as_str())
                    .unwrap_or("vp8"),
            )
        } else {
            "audio/opus".to_owned()
        };
        let mut layers = request.layers.clone();
        layers.sort_by_key(|l| l.quality);
        let stream = if request.stream.is_empty() {
            match lk::TrackSource::try_from(request.source) {
                Ok(lk::TrackSource::ScreenShare | lk::TrackSource::ScreenShareAudio) => "screen",
                _ => "camera",
            }
            .to_owned()
        } else {
            request.stream.clone()
        };
        let track_info = lk::TrackInfo {
            sid,
            r#type: request.r#type,
            name: request.name.chars().take(256).collect(),
            muted: request.muted,
            width: request.width,
            height: request.height,
            simulcast: layers.len() > 1,
            disable_dtx: request.disable_dtx,
            source: request.source,
            layers: layers.clone(),
            mime_type: mime.clone(),
            codecs: vec![lk::SimulcastCodecInfo {
                mime_type: mime,
                cid: request.cid.clone(),
                layers,
                ..Default::default()
            }],
            stereo: request.stereo,
            disable_red: true,
            stream,
            ..Default::default()
        };
        Self {
            cid: request.cid.clone(),
            kind,
            info: track_info,
            mid: None,
            rids: Vec::new(),
            layer_seen: HashMap::new(),
            last_keyframe_request: HashMap::new(),
        }
    }

    pub fn saw_layer(&mut self, rid: Option<Rid>, _keyframe: bool, at: Instant) {
        if let Some(r) = rid {
            if !self.rids.contains(&r) {
                self.rids.push(r);
            }
        }
        let timing = self.layer_seen.entry(rid).or_insert(LayerTiming {
            last: at,
            // Until measured: 15 fps.
            mean_gap: Duration::from_millis(66),
        });
        // A moving average of the gap (1/8 new), a long pause counted as the longest wait.
        let gap = at
            .saturating_duration_since(timing.last)
            .min(STOPPED_AFTER_AT_MOST);
        timing.mean_gap = (timing.mean_gap * 7 + gap) / 8;
        timing.last = at;
    }

    /// Layers still being sent: each carried a frame within a few of its usual frame gaps.
    pub fn active_rids(&self, now: Instant) -> Vec<Rid> {
        self.rids
            .iter()
            .copied()
            .filter(|r| {
                self.layer_seen
                    .get(&Some(*r))
                    .is_some_and(|t| now.saturating_duration_since(t.last) < t.stopped_after())
            })
            .collect()
    }

    #[allow(deprecated)]
    /// Each announced layer's rid (from its quality) and height.
    pub fn layer_sizes(&self) -> Vec<(Rid, u32)> {
        self.info
            .layers
            .iter()
            .map(|l| {
                let rid = match lk::VideoQuality::try_from(l.quality) {
                    Ok(lk::VideoQuality::Low) => "q",
                    Ok(lk::VideoQuality::Medium) => "h",
                    _ => "f",
                };
                (
                    Rid::from(rid),
                    l.height.min(l.width).max(l.height.min(l.width)),
                )
            })
            .collect()
    }

    pub fn keyframe_request_due(
        &mut self,
        rid: Option<Rid>,
        now: Instant,
        interval: Duration,
    ) -> bool {
        match self.last_keyframe_request.get(&rid) {
            Some(t) if now.saturating_duration_since(*t) < interval => false,
            _ => {
                self.last_keyframe_request.insert(rid, now);
                true
            }
        }
    }
}

pub(crate) enum Decision {
    Write,
    Drop,
    DropWantKeyframe(Option<Rid>),
}

/// One published track forwarded to one subscriber.
pub(crate) struct DownTrack {
    pub publisher: ParticipantKey,
    pub track_sid: String,
    pub kind: MediaKind,
    pub mid: Option<Mid>,
    /// The client has an answer naming this track on `mid`: writing may start.
    pub announced: bool,
    pub needs_keyframe: bool,
    pub current_rid: Option<Rid>,
    /// The subscriber's wish: a height, or a quality.
    pub wanted_height: Option<u32>,
    pub wanted_quality: lk::VideoQuality,
    pub paused: bool,
    offset: i64,
    last_out: Option<MediaTime>,
    rebase_next: bool,
    /// The incoming payload type and the outgoing one it maps to.
    pt_map: Option<(Pt, Pt)>,
}

impl DownTrack {
    pub fn new(publisher: ParticipantKey, track_sid: String, kind: MediaKind) -> Self {
        Self {
            publisher,
            track_sid,
            kind,
            mid: None,
            announced: false,
            needs_keyframe: kind == MediaKind::Video,
            current_rid: None,
            wanted_height: None,
            wanted_quality: lk::VideoQuality::High,
            paused: false,
            offset: 0,
            last_out: None,
            rebase_next: false,
            pt_map: None,
        }
    }

    pub fn writable_mid(&self) -> Option<Mid> {
        if self.announced {
            self.mid
        } else {
            None
        }
    }

    /// The layer this subscriber should get, among those currently sent.
    fn target_rid(&self, layers: &[(Rid, u32)], active: &[Rid]) -> Option<Rid> {
        if active.is_empty() {
            return None;
        }
        let height_of = |r: &Rid| layers.iter().find(|(l, _)| l == r).map(|(_, h)| *h);
        if let Some(wanted) = self.wanted_height {
            // The smallest layer at least 90 % of the wanted height, else the largest.
            let mut sized: Vec<(Rid, u32)> = active
                .iter()
                .map(|r| (*r, height_of(r).unwrap_or(u32::MAX)))
                .collect();
            sized.sort_by_key(|(_, h)| *h);
            let floor = wanted.saturating_mul(9) / 10;
            return sized
                .iter()
                .find(|(_, h)| *h >= floor)
                .or(sized.last())
                .map(|(r, _)| *r);
        }
        let preference: &[&str] = match self.wanted_quality {
            lk::VideoQuality::Low => &["q", "h", "f"],
            lk::VideoQuality::Medium => &["h", "q", "f"],
            _ => &["f", "h", "q"],
        };
        preference
            .iter()
            .map(|r| Rid::from(*r))
            .find(|r| active.contains(r))
            .or_else(|| active.first().copied())
    }

    pub fn accept(
        &mut self,
        data: &MediaData,
        keyframe: bool,
        layers: &[(Rid, u32)],
        active: &[Rid],
    ) -> Decision {
        if self.paused {
            return Decision::Drop;
        }
        if self.kind == MediaKind::Audio {
            return Decision::Write;
        }
        let target = if data.rid.is_none() {
            None
        } else {
            self.target_rid(layers, active)
        };
        if data.rid == target {
            if self.needs_keyframe || self.current_rid != target {
                if keyframe {
                    if self.current_rid != target && self.last_out.is_some() {
                        self.rebase_next = true;
                    }
                    self.current_rid = target;
                    self.needs_keyframe = false;
                    return Decision::Write;
                }
                if !self.needs_keyframe && data.rid == self.current_rid {
                    return Decision::Write;
                }
                return Decision::DropWantKeyframe(target);
            }
            return Decision::Write;
        }
        if data.rid == self.current_rid && !self.needs_keyframe {
            // The old layer keeps flowing until the new one's keyframe arrives.
            return Decision::Write;
        }
        Decision::Drop
    }

    /// The payload type to send `incoming` with on this subscriber's section: one the
    /// subscriber negotiated for that section (str0m's own matcher looks at every configured
    /// type, which may not be in this section's answer), the same codec with the closest
    /// format.
    pub fn outgoing_pt(&mut self, writer: &Writer<'_>, incoming: &PayloadParams) -> Option<Pt> {
        if let Some((inp, out)) = self.pt_map {
            if inp == incoming.pt() {
                return Some(out);
            }
        }
        let spec = incoming.spec();
        let same_codec: Vec<&PayloadParams> = writer
            .payload_params()
            .filter(|p| p.spec().codec == spec.codec && p.spec().clock_rate == spec.clock_rate)
            .collect();
        let format = spec.format;
        let chosen = same_codec
            .iter()
            .find(|p| p.spec() == spec)
            .or_else(|| {
                same_codec.iter().find(|p| {
                    p.spec().format.packetization_mode == format.packetization_mode
                        && p.spec().format.profile_level_id == format.profile_level_id
                })
            })
            .or_else(|| {
                same_codec
                    .iter()
                    .find(|p| p.spec().format.packetization_mode == format.packetization_mode)
            })
            .or_else(|| same_codec.first())
            .map(|p| p.pt())?;
        self.pt_map = Some((incoming.pt(), chosen));
        Some(chosen)
    }

    /// The output time for an input time: continuous across layer switches (each layer has
    /// its own RTP clock offset).
    pub fn rebase(&mut self, time: MediaTime) -> MediaTime {
        let freq = time.frequency();
        if self.rebase_next {
            self.rebase_next = false;
            if let Some(last) = self.last_out {
                let step = i64::from(freq.get()) / 30;
                self.offset = last.numer() as i64 + step - time.numer() as i64;
            }
        }
        let out = MediaTime::new((time.numer() as i64 + self.offset).max(0) as u64, freq);
        self.last_out = Some(out);
        out
    }
}

pub(crate) struct Participant {
    pub sid: String,
    pub identity: String,
    pub name: String,
    pub room: String,
    pub grant: VideoGrant,
    pub auto_subscribe: bool,
    pub rtc: Rtc,
    pub signal: Option<SignalTx>,
    pub signal_closed_at: Option<Instant>,
    /// The signal channel was full: the client stopped reading.
    pub signal_stuck: std::cell::Cell<bool>,
    pub version: u32,
    pub joined_at: Instant,
    pub joined_unix: i64,
    pub last_input: Instant,
    pub next_timeout: Instant,
    pub connected: bool,
    pub dead: bool,
    pub ice: IceState,
    pub tracks: Vec<PublishedTrack>,
    pub downtracks: Vec<DownTrack>,
    pub slots: Vec<Slot>,
    pub offer_requested: bool,
    offer_requested_at: Option<Instant>,
    pub frames_out: u64,
    level: f32,
    level_at: Option<Instant>,
    speaking: bool,
    quality_at: Option<Instant>,
    quality: Option<lk::ConnectionQuality>,
    loss: f32,
    rtt: Option<Duration>,
    jitter_ms: f32,
}

impl Participant {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sid: String,
        identity: String,
        name: String,
        room: String,
        grant: VideoGrant,
        auto_subscribe: bool,
        rtc: Rtc,
        signal: SignalTx,
        now: Instant,
    ) -> Self {
        Self {
            sid,
            identity,
            name,
            room,
            grant,
            auto_subscribe,
            rtc,
            signal: Some(signal),
            signal_closed_at: None,
            signal_stuck: std::cell::Cell::new(false),
            version: 1,
            joined_at: now,
            joined_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            last_input: now,
            next_timeout: now,
            connected: false,
            dead: false,
            ice: IceState::Connecting,
            tracks: Vec::new(),
            downtracks: Vec::new(),
            slots: Vec::new(),
            offer_requested: false,
            offer_requested_at: None,
            frames_out: 0,
            level: 0.0,
            level_at: None,
            speaking: false,
            quality_at: None,
            quality: None,
            loss: 0.0,
            rtt: None,
            jitter_ms: 0.0,
        }
    }

    pub fn info(&self) -> lk::ParticipantInfo {
        lk::ParticipantInfo {
            sid: self.sid.clone(),
            identity: self.identity.clone(),
            name: self.name.clone(),
            state: if self.connected {
                lk::participant_info::State::Active
            } else {
                lk::participant_info::State::Joined
            } as i32,
            tracks: self
                .tracks
                .iter()
                .filter(|t| t.mid.is_some())
                .map(|t| t.info.clone())
                .collect(),
            joined_at: self.joined_unix,
            joined_at_ms: self.joined_unix * 1000,
            version: self.version,
            permission: Some(info::permission(&self.grant)),
            is_publisher: self.tracks.iter().any(|t| t.mid.is_some()),
            ..Default::default()
        }
    }

    /// Queues a message for the client. A client that does not read its signal socket is
    /// removed rather than waited for.
    pub fn send(&self, message: lk::SignalResponse) {
        if let Some(signal) = &self.signal {
            if signal.try_send(message).is_err() {
                // Removed by the engine's next housekeeping.
                self.signal_stuck.set(true);
            }
        }
    }

    pub fn refuse(
        &self,
        request: Option<lk::request_response::Request>,
        reason: lk::request_response::Reason,
        message: &str,
    ) {
        self.send(response(Resp::RequestResponse(lk::RequestResponse {
            request_id: 0,
            reason: reason as i32,
            message: message.to_owned(),
            request,
        })));
    }

    pub fn add_trickle(&mut self, candidate_init: &str) {
        #[derive(serde::Deserialize)]
        struct Init {
            candidate: String,
        }
        let Ok(init) = serde_json::from_str::<Init>(candidate_init) else {
            return;
        };
        let text = init.candidate.trim();
        let text = text.strip_prefix("a=").unwrap_or(text);
        // mDNS names cannot be resolved here; the peer's checks reveal its address anyway.
        if text.is_empty() || text.contains(".local") {
            return;
        }
        if let Ok(c) = Candidate::from_sdp_string(text) {
            self.rtc.add_remote_candidate(c);
        }
    }

    pub fn apply_track_setting(&mut self, setting: &lk::UpdateTrackSettings) {
        for down in self
            .downtracks
            .iter_mut()
            .filter(|d| setting.track_sids.contains(&d.track_sid))
        {
            down.paused = setting.disabled;
            if setting.height > 0 || setting.width > 0 {
                down.wanted_height = Some(setting.height.min(setting.width).max(1));
                if setting.height == 0 || setting.width == 0 {
                    down.wanted_height = Some(setting.height.max(setting.width));
                }
            } else {
                down.wanted_height = None;
                down.wanted_quality =
                    lk::VideoQuality::try_from(setting.quality).unwrap_or(lk::VideoQuality::High);
            }
        }
    }

    /// Keeps the slots whose mid passes `keep`; subscriptions on the others lose their mid.
    pub fn retain_slots(&mut self, keep: impl Fn(&str) -> bool) {
        let mut released = Vec::new();
        self.slots.retain(|slot| {
            let mid = slot.mid.to_string();
            if keep(&mid) {
                return true;
            }
            released.push(slot.mid);
            false
        });
        for down in &mut self.downtracks {
            if down.mid.is_some_and(|m| released.contains(&m)) {
                down.mid = None;
                down.announced = false;
            }
        }
    }

    /// Gives free slots to subscriptions that have none.
    pub fn assign_slots(&mut self) {
        for down in self.downtracks.iter_mut().filter(|d| d.mid.is_none()) {
            if let Some(slot) = self
                .slots
                .iter_mut()
                .find(|s| s.kind == down.kind && s.downtrack.is_none())
            {
                slot.downtrack = Some((down.publisher, down.track_sid.clone()));
                down.mid = Some(slot.mid);
                down.announced = false;
                down.needs_keyframe = down.kind == MediaKind::Video;
            }
        }
    }

    /// What each sending section should say in the next answer.
    pub fn answer_plan(&self, sids: &HashMap<ParticipantKey, String>) -> HashMap<String, Outgoing> {
        self.slots
            .iter()
            .map(|slot| {
                let plan = match &slot.downtrack {
                    Some((publisher, track)) => match sids.get(publisher) {
                        Some(psid) => Outgoing::Track {
                            stream: format!("{psid}|{track}"),
                            track: track.clone(),
                        },
                        None => Outgoing::Idle,
                    },
                    None => Outgoing::Idle,
                };
                (slot.mid.to_string(), plan)
            })
            .collect()
    }

    pub fn mark_announced(&mut self) {
        for down in self.downtracks.iter_mut().filter(|d| d.mid.is_some()) {
            down.announced = true;
        }
    }

    /// Asks the client for an offer: with more receiving sections when subscriptions lack
    /// one, or with none to announce assignments or releases.
    pub fn request_offer(&mut self) {
        let now = Instant::now();
        if self.offer_requested
            && self
                .offer_requested_at
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(3))
        {
            return;
        }
        let missing = |kind| {
            self.downtracks
                .iter()
                .filter(|d| d.mid.is_none() && d.kind == kind)
                .count() as u32
        };
        let requirement = lk::MediaSectionsRequirement {
            num_audios: missing(MediaKind::Audio),
            num_videos: missing(MediaKind::Video),
        };
        self.offer_requested = true;
        self.offer_requested_at = Some(now);
        self.send(response(Resp::MediaSectionsRequirement(requirement)));
    }

    /// After an answer: ask again if some subscriptions still have no section.
    pub fn request_slots_if_needed(&mut self) {
        if self.downtracks.iter().any(|d| d.mid.is_none()) {
            self.request_offer();
        }
    }

    pub fn drop_downtrack(&mut self, publisher: ParticipantKey, track_sid: &str) -> bool {
        let before = self.downtracks.len();
        self.downtracks
            .retain(|d| !(d.publisher == publisher && d.track_sid == track_sid));
        for slot in &mut self.slots {
            if slot
                .downtrack
                .as_ref()
                .is_some_and(|(p, t)| *p == publisher && t == track_sid)
            {
                slot.downtrack = None;
            }
        }
        before != self.downtracks.len()
    }

    pub fn drop_downtracks_of(&mut self, publisher: ParticipantKey) -> bool {
        let before = self.downtracks.len();
        self.downtracks.retain(|d| d.publisher != publisher);
        for slot in &mut self.slots {
            if slot
                .downtrack
                .as_ref()
                .is_some_and(|(p, _)| *p == publisher)
            {
                slot.downtrack = None;
            }
        }
        before != self.downtracks.len()
    }

    pub fn on_event(
        &mut self,
        key: ParticipantKey,
        event: Event,
        actions: &mut Vec<Action>,
        _stats: &mut EngineStats,
    ) {
        match event {
            Event::Connected if !self.connected => actions.push(Action::Connected(key)),
            Event::IceConnectionStateChange(state) => self.ice = state.into(),
            Event::MediaAdded(added) => {
                if matches!(
                    added.direction,
                    str0m::media::Direction::RecvOnly | str0m::media::Direction::SendRecv
                ) {
                    actions.push(Action::MediaAdded {
                        owner: key,
                        mid: added.mid,
                        kind: added.kind,
                    });
                }
            }
            Event::MediaData(data) => actions.push(Action::Forward { from: key, data }),
            Event::KeyframeRequest(request) => actions.push(Action::KeyframeRequest {
                subscriber: key,
                mid: request.mid,
                kind: request.kind,
            }),
            Event::MediaIngressStats(stats) => {
                if let Some(loss) = stats.loss {
                    self.loss = self.loss * 0.7 + loss * 0.3;
                }
                if stats.rtt.is_some() {
                    self.rtt = stats.rtt;
                }
                // RFC 3550 jitter is in RTP clock units: 90 kHz video, 48 kHz Opus.
                let video = self
                    .tracks
                    .iter()
                    .any(|t| t.mid == Some(stats.mid) && t.kind == MediaKind::Video);
                let units_per_ms = if video { 90.0 } else { 48.0 };
                self.jitter_ms = self.jitter_ms * 0.7 + (stats.jitter as f32 / units_per_ms) * 0.3;
            }
            Event::MediaEgressStats(stats) => {
                if let Some(loss) = stats.loss {
                    self.loss = self.loss * 0.7 + loss * 0.3;
                }
                if stats.rtt.is_some() {
                    self.rtt = stats.rtt;
                }
            }
            Event::PeerStats(stats) if stats.rtt.is_some() => self.rtt = stats.rtt,
            _ => {}
        }
    }

    /// `level` is the RFC 6464 audio level: 0 is loudest, -127 silence (dBov).
    pub fn observe_audio_level(&mut self, level: i8, at: Instant) {
        let dbov = -f32::from(level.unsigned_abs());
        // 0..1, with -60 dBov and below as silence.
        let linear = ((dbov + 60.0) / 60.0).clamp(0.0, 1.0);
        self.level = self.level * 0.8 + linear * 0.2;
        self.level_at = Some(at);
    }

    /// A speaker entry when this participant started or stopped speaking.
    pub fn speaking_change(&mut self, now: Instant) -> Option<lk::SpeakerInfo> {
        let fresh = self
            .level_at
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(500));
        let level = if fresh { self.level } else { 0.0 };
        let muted_audio = self
            .tracks
            .iter()
            .filter(|t| t.kind == MediaKind::Audio)
            .all(|t| t.info.muted);
        // Hysteresis: start above 0.35, stop below 0.2.
        let speaking = !muted_audio
            && if self.speaking {
                level > 0.2
            } else {
                level > 0.35
            };
        if speaking == self.speaking && !(speaking && fresh) {
            return None;
        }
        if speaking == self.speaking {
            return None;
        }
        self.speaking = speaking;
        Some(lk::SpeakerInfo {
            sid: self.sid.clone(),
            level,
            active: speaking,
        })
    }

    /// This participant's connection quality, every 2 s once connected.
    pub fn quality_due(&mut self, now: Instant) -> Option<lk::ConnectionQualityInfo> {
        if !self.connected {
            return None;
        }
        if self
            .quality_at
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(2))
        {
            return None;
        }
        self.quality_at = Some(now);
        let rtt_ms = self.rtt.map_or(0.0, |r| r.as_secs_f32() * 1000.0);
        let loss = self.loss.max(0.0);
        // A MOS-like score from loss, round trip and jitter, mapped to LiveKit's three levels. A
        // connected participant is never reported LOST (clients reconnect on LOST).
        let score =
            (5.0 - loss * 100.0 * 0.25 - (rtt_ms / 100.0) * 0.2 - (self.jitter_ms / 30.0) * 0.3)
                .clamp(1.0, 5.0);
        let quality = if score >= 4.2 {
            lk::ConnectionQuality::Excellent
        } else if score >= 3.0 {
            lk::ConnectionQuality::Good
        } else {
            lk::ConnectionQuality::Poor
        };
        let changed = self.quality != Some(quality);
        self.quality = Some(quality);
        changed.then(|| lk::ConnectionQualityInfo {
            participant_sid: self.sid.clone(),
            quality: quality as i32,
            score,
        })
    }
}

/// Whether a frame starts a new decodable picture.
pub(crate) fn is_keyframe(data: &MediaData) -> bool {
    match &data.codec_extra {
        CodecExtra::H264(extra) => extra.is_keyframe,
        CodecExtra::Vp8(_) => vp8_is_keyframe(&data.data),
        _ => match data.params.spec().codec {
            Codec::Vp8 => vp8_is_keyframe(&data.data),
            Codec::H264 => h264_is_keyframe(&data.data),
            _ => false,
        },
    }
}

/// VP8 frame tag: bit 0 of the first byte is 0 for a key frame (RFC 6386 9.1).
pub fn vp8_is_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

/// An Annex B access unit holding an IDR slice or a sequence parameter set.
pub fn h264_is_keyframe(frame: &[u8]) -> bool {
    let mut i = 0;
    while i + 3 < frame.len() {
        if frame[i] == 0 && frame[i + 1] == 0 && frame[i + 2] == 1 {
            let nal = frame[i + 3] & 0x1f;
            if nal == 5 || nal == 7 {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video_track() -> PublishedTrack {
        let request = lk::AddTrackRequest {
            r#type: lk::TrackType::Video as i32,
            ..Default::default()
        };
        PublishedTrack::from_request(&request, "TR_test".into())
    }

    /// Feeds `frames` frames of layer `rid` at `fps` from `start`; returns when the last came.
    fn feed(
        track: &mut PublishedTrack,
        rid: &str,
        fps: u64,
        frames: u64,
        start: Instant,
    ) -> Instant {
        let gap = Duration::from_millis(1000 / fps);
        let mut at = start;
        for i in 0..frames {
            at = start + gap * i as u32;
            track.saw_layer(Some(Rid::from(rid)), false, at);
        }
        at
    }

    #[test]
    fn a_layer_that_stops_at_30_fps_is_dropped_within_half_a_second() {
        let mut track = video_track();
        let start = Instant::now();
        let last_f = feed(&mut track, "f", 30, 60, start);
        let last_q = feed(&mut track, "q", 30, 90, start);
        assert!(last_q > last_f);
        // 300 ms after its last frame: late, not stopped.
        assert_eq!(
            track.active_rids(last_f + Duration::from_millis(300)),
            vec![Rid::from("f"), Rid::from("q")]
        );
        // 500 ms after: stopped, while q goes on.
        assert_eq!(
            track.active_rids(last_f + Duration::from_millis(500)),
            vec![Rid::from("q")]
        );
    }

    #[test]
    fn a_slow_layer_is_given_a_few_of_its_own_gaps() {
        let mut track = video_track();
        let start = Instant::now();
        let last = feed(&mut track, "q", 5, 40, start);
        // 600 ms is three of its 200 ms gaps: still sending.
        assert_eq!(
            track.active_rids(last + Duration::from_millis(600)),
            vec![Rid::from("q")]
        );
        assert!(track
            .active_rids(last + Duration::from_millis(900))
            .is_empty());
    }

    #[test]
    fn no_layer_waits_longer_than_the_cap() {
        let mut track = video_track();
        let start = Instant::now();
        // One frame every 2 s: the gap counts as 1.5 s at most, the wait as 1.5 s at most.
        let last = feed(&mut track, "h", 1, 1, start);
        track.saw_layer(Some(Rid::from("h")), false, last + Duration::from_secs(2));
        let last = last + Duration::from_secs(2);
        assert!(track
            .active_rids(last + Duration::from_millis(1500))
            .is_empty());
    }
}
