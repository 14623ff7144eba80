//! One remote participant's audio on its way to the mixer: Opus packets ordered by RTP time,
//! decoded, gaps concealed, and the playout delay fitted to the jitter measured on arrival.
//!
//! The delay is kept as an *offset*: how long after a sample's nominal send time (its RTP time
//! on the arrival clock) it is handed to the speaker. Each packet's transit (arrival minus RTP
//! time) is measured; the target offset is the 95th percentile of recent transits plus a small
//! margin, so the fastest packets wait the longest and 95 % arrive in time. Audio plays at the
//! device's pace: when the offset stays above the target, 10 ms is trimmed; when the buffer
//! runs dry, 10 ms is concealed without advancing, which grows the offset.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use confab_audio::FRAME_SAMPLES;
use opus_rs::OpusDecoder;
use serde::Serialize;

use super::SAMPLES_PER_MS;

/// The longest Opus packet: 120 ms at 48 kHz.
pub(crate) const MAX_PACKET_SAMPLES: usize = 5760;
/// Opus conceals in steps of 2.5 ms.
const PLC_QUANTUM: usize = 120;
/// The playout delay before enough packets were measured.
pub const INITIAL_TARGET: Duration = Duration::from_millis(40);
/// The most delay the buffer adds, however bad the jitter.
pub const MAX_TARGET: Duration = Duration::from_millis(200);
/// Transits kept for the target: about 2 s of 20 ms packets.
const TRANSIT_WINDOW: usize = 100;
/// Transits needed before the measured target replaces the initial one.
const TRANSITS_FOR_TARGET: usize = 25;
/// Slack on top of the 95th percentile, for the speaker's uneven pulls.
const TARGET_MARGIN_MS: f64 = 5.0;
/// Pulls (10 ms each) over which the offset must stay above the target before a trim.
const TRIM_WINDOW_PULLS: u32 = 25;
/// A packet whose transit differs this much from the fastest one starts the stream over.
const RESET_AFTER_MS: f64 = 2000.0;
/// Packets held at most (3 s of 20 ms packets): a stalled speaker must not grow memory.
const MAX_BUFFERED_PACKETS: usize = 150;
/// Starved pulls concealed before the stream counts as paused and goes quiet.
const MAX_STRETCH_PULLS: u32 = 10;
/// Gaps up to this long are concealed; longer ones are skipped (the sender paused).
const MAX_CONCEAL_SAMPLES: u64 = 48 * 100;
/// A surplus this large (a speaker that stalled, a burst that arrived at once) is dropped in
/// one go rather than 10 ms per window.
const CATCH_UP_MS: f64 = 60.0;
/// Samples crossfaded where audio was trimmed, so the cut does not click.
const TRIM_CROSSFADE: usize = 120;

/// One remote participant's receive figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RemoteAudioStats {
    pub identity: String,
    /// Packets received (late and invalid ones included).
    pub packets: u64,
    /// Packets missing when their turn came, concealed (or rebuilt from FEC).
    pub lost: u64,
    /// Packets that arrived after their turn (already concealed) and were dropped.
    pub late: u64,
    /// Packets that were not Opus or that the decoder refused.
    pub invalid: u64,
    /// 10 ms pulls the buffer could not serve (concealed, which grows the delay).
    pub underruns: u64,
    /// Milliseconds of audio dropped to bring the delay down to the target.
    pub trimmed_ms: u64,
    /// Audio buffered ahead of the speaker, decoded or not.
    pub buffer_ms: f32,
    /// The delay the buffer aims at, over the fastest packet's transit.
    pub target_ms: f32,
    /// The delay it adds now, over the fastest packet's transit.
    pub delay_ms: f32,
    /// False while the buffer waits for packets (start, or the sender paused).
    pub playing: bool,
}

struct Packet {
    data: Vec<u8>,
    samples: usize,
}

/// Samples (at 48 kHz) in an Opus packet, from its TOC byte (RFC 6716 §3.1); `None` for
/// something that is not an Opus packet.
pub fn opus_packet_samples(packet: &[u8]) -> Option<usize> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let per_frame = match config {
        // SILK: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => usize::from(*packet.get(1)? & 0x3f),
    };
    let total = per_frame * frames;
    (frames > 0 && total <= MAX_PACKET_SAMPLES).then_some(total)
}

/// Milliseconds from `epoch` to `t`, negative when `t` is earlier.
fn ms_between(epoch: Instant, t: Instant) -> f64 {
    match t.checked_duration_since(epoch) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(epoch.duration_since(t).as_secs_f64() * 1000.0),
    }
}

/// A remote participant's jitter buffer and Opus decoder. [`JitterBuffer::push`] takes
/// packets as they arrive; [`JitterBuffer::pull`] gives 10 ms at the speaker's pace.
pub struct JitterBuffer {
    decoder: Option<OpusDecoder>,
    packets: BTreeMap<u64, Packet>,
    /// Decoded samples not yet played.
    pcm: VecDeque<f32>,
    decoded: Vec<f32>,
    playing: bool,
    /// RTP time of the next packet to decode.
    next_rtp: u64,
    last_packet_samples: usize,
    /// The first packet's arrival and RTP time: the origin of transits and offsets.
    epoch: Option<(Instant, u64)>,
    transits: VecDeque<f64>,
    target_offset_ms: f64,
    min_transit_ms: f64,
    trim_min_excess_ms: f64,
    trim_pulls: u32,
    starved_pulls: u32,
    highest_end: u64,
    offset_ms: f64,
    stats: RemoteAudioStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl JitterBuffer {
    pub fn new() -> Self {
        Self {
            decoder: OpusDecoder::new(48_000, 1).ok(),
            packets: BTreeMap::new(),
            pcm: VecDeque::with_capacity(MAX_PACKET_SAMPLES * 2),
            decoded: vec![0.0; MAX_PACKET_SAMPLES],
            playing: false,
            next_rtp: 0,
            last_packet_samples: 960,
            epoch: None,
            transits: VecDeque::with_capacity(TRANSIT_WINDOW),
            target_offset_ms: INITIAL_TARGET.as_secs_f64() * 1000.0,
            min_transit_ms: 0.0,
            trim_min_excess_ms: f64::INFINITY,
            trim_pulls: 0,
            starved_pulls: 0,
            highest_end: 0,
            offset_ms: 0.0,
            stats: RemoteAudioStats::default(),
        }
    }

    /// A packet as received: `rtp_time` in 48 kHz units, `received_at` its arrival.
    pub fn push(&mut self, rtp_time: u64, data: &[u8], received_at: Instant) {
        self.stats.packets += 1;
        let Some(samples) = opus_packet_samples(data) else {
            self.stats.invalid += 1;
            return;
        };
        let mut transit = self.transit(rtp_time, received_at);
        if transit.is_some_and(|t| (t - self.min_transit_ms).abs() > RESET_AFTER_MS) {
            // A new stream, or the sender's clock jumped: start over from this packet.
            self.restart();
            transit = None;
        }
        let transit = transit.unwrap_or_else(|| {
            self.epoch = Some((received_at, rtp_time));
            0.0
        });
        self.record_transit(transit);

        if self.playing && rtp_time < self.next_rtp {
            self.stats.late += 1;
            return;
        }
        if self.packets.len() >= MAX_BUFFERED_PACKETS {
            // The speaker is not pulling: keep the newest.
            self.packets.pop_first();
        }
        self.highest_end = self
            .highest_end
            .max(rtp_time.saturating_add(samples as u64));
        self.packets.entry(rtp_time).or_insert(Packet {
            data: data.to_vec(),
            samples,
        });
    }

    fn restart(&mut self) {
        self.packets.clear();
        self.pcm.clear();
        self.playing = false;
        self.epoch = None;
        self.transits.clear();
        self.highest_end = 0;
        self.starved_pulls = 0;
        self.reset_trim_window();
    }

    /// Arrival minus nominal send time, in ms on the first packet's clock.
    fn transit(&self, rtp_time: u64, received_at: Instant) -> Option<f64> {
        let (epoch_at, epoch_rtp) = self.epoch?;
        let rtp_ms = (rtp_time as i64).wrapping_sub(epoch_rtp as i64) as f64 / SAMPLES_PER_MS;
        Some(ms_between(epoch_at, received_at) - rtp_ms)
    }

    fn record_transit(&mut self, transit: f64) {
        if self.transits.len() == TRANSIT_WINDOW {
            self.transits.pop_front();
        }
        self.transits.push_back(transit);
        let mut sorted: Vec<f64> = self.transits.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        self.min_transit_ms = sorted[0];
        let max = self.min_transit_ms + MAX_TARGET.as_secs_f64() * 1000.0;
        self.target_offset_ms = if sorted.len() < TRANSITS_FOR_TARGET {
            self.min_transit_ms + INITIAL_TARGET.as_secs_f64() * 1000.0
        } else {
            let p95 = sorted[(sorted.len() * 95).div_ceil(100) - 1];
            p95 + TARGET_MARGIN_MS
        }
        .clamp(self.min_transit_ms, max);
    }

    fn reset_trim_window(&mut self) {
        self.trim_min_excess_ms = f64::INFINITY;
        self.trim_pulls = 0;
    }

    /// The offset at `now` if the next 10 ms were handed to the speaker now: how long after
    /// its nominal time the last sample of that frame plays.
    fn offset_at(&self, now: Instant, playout_rtp: u64) -> f64 {
        let Some((epoch_at, epoch_rtp)) = self.epoch else {
            return 0.0;
        };
        let end = (playout_rtp as i64)
            .wrapping_add(FRAME_SAMPLES as i64)
            .wrapping_sub(epoch_rtp as i64);
        ms_between(epoch_at, now) - end as f64 / SAMPLES_PER_MS
    }

    fn playout_rtp(&self) -> u64 {
        self.next_rtp.saturating_sub(self.pcm.len() as u64)
    }

    /// The next 10 ms (`out.len()` must be [`FRAME_SAMPLES`]) at `now`. Returns false when
    /// nothing is playing (`out` is silence then).
    pub fn pull(&mut self, now: Instant, out: &mut [f32]) -> bool {
        out.fill(0.0);
        if !self.playing && !self.try_start(now) {
            self.stats.playing = false;
            return false;
        }
        self.stats.playing = true;
        self.offset_ms = self.offset_at(now, self.playout_rtp());
        self.maybe_trim();
        let mut starved = false;
        while self.pcm.len() < FRAME_SAMPLES {
            if !self.decode_next() {
                // Nothing buffered at all: the next packet is late, or the sender paused.
                starved = true;
                self.stats.underruns += 1;
                self.starved_pulls += 1;
                if self.starved_pulls > MAX_STRETCH_PULLS {
                    self.playing = false;
                    self.pcm.clear();
                    self.reset_trim_window();
                    return false;
                }
                // Conceal without advancing: the delay grows by 10 ms.
                self.conceal(FRAME_SAMPLES);
            }
        }
        if !starved {
            self.starved_pulls = 0;
        }
        let n = FRAME_SAMPLES.min(self.pcm.len());
        for (o, s) in out.iter_mut().zip(self.pcm.drain(..n)) {
            *o = s;
        }
        true
    }

    fn try_start(&mut self, now: Instant) -> bool {
        let Some((&first, _)) = self.packets.first_key_value() else {
            return false;
        };
        let buffered = self.highest_end.saturating_sub(first) as f64 / SAMPLES_PER_MS;
        let max_ms = MAX_TARGET.as_secs_f64() * 1000.0;
        if self.offset_at(now, first) < self.target_offset_ms && buffered < max_ms {
            return false;
        }
        self.playing = true;
        self.next_rtp = first;
        self.pcm.clear();
        self.starved_pulls = 0;
        self.reset_trim_window();
        true
    }

    /// Drops 10 ms when the offset stayed above the target for a whole window (the whole
    /// surplus at once when it is large).
    fn maybe_trim(&mut self) {
        let excess = self.offset_ms - self.target_offset_ms;
        self.trim_min_excess_ms = self.trim_min_excess_ms.min(excess);
        self.trim_pulls += 1;
        if self.trim_pulls < TRIM_WINDOW_PULLS {
            return;
        }
        let surplus = self.trim_min_excess_ms;
        self.reset_trim_window();
        let frame_ms = FRAME_SAMPLES as f64 / SAMPLES_PER_MS;
        if surplus < frame_ms {
            return;
        }
        let frames = if surplus >= CATCH_UP_MS {
            (surplus / frame_ms).floor() as usize
        } else {
            1
        };
        let mut last_dropped = Vec::new();
        'drop: for _ in 0..frames {
            // Trim only audio already here, keeping 10 ms and the crossfade to play.
            while self.pcm.len() < FRAME_SAMPLES * 2 + TRIM_CROSSFADE {
                if self.packets.is_empty() || !self.decode_next() {
                    break 'drop;
                }
            }
            last_dropped.clear();
            last_dropped.extend(self.pcm.drain(..FRAME_SAMPLES));
            self.stats.trimmed_ms += frame_ms as u64;
        }
        for (i, (s, d)) in self
            .pcm
            .iter_mut()
            .zip(&last_dropped)
            .take(TRIM_CROSSFADE)
            .enumerate()
        {
            let w = (i + 1) as f32 / (TRIM_CROSSFADE + 1) as f32;
            *s = *d * (1.0 - w) + *s * w;
        }
    }

    /// Decodes (or conceals) the next piece of the timeline into `pcm`. False when there is
    /// nothing buffered to decide on.
    fn decode_next(&mut self) -> bool {
        if let Some(packet) = self.packets.remove(&self.next_rtp) {
            self.next_rtp = self.next_rtp.saturating_add(packet.samples as u64);
            self.last_packet_samples = packet.samples;
            if !self.run_decoder(Some(&packet.data), false, MAX_PACKET_SAMPLES) {
                self.stats.invalid += 1;
                self.conceal(packet.samples);
            }
            return true;
        }
        // Anything older than the next packet was already played over: drop it.
        while let Some((&rtp, _)) = self.packets.first_key_value() {
            if rtp >= self.next_rtp {
                break;
            }
            self.packets.pop_first();
            self.stats.late += 1;
        }
        let Some((&rtp, next)) = self.packets.first_key_value() else {
            return false;
        };
        let gap = rtp - self.next_rtp;
        if gap > MAX_CONCEAL_SAMPLES {
            // The sender paused (or a long burst was lost): carry on from the next packet.
            self.stats.lost += gap / self.last_packet_samples.max(1) as u64;
            self.next_rtp = rtp;
            return true;
        }
        let n = (gap as usize).min(self.last_packet_samples) / PLC_QUANTUM * PLC_QUANTUM;
        if n == 0 {
            // Misaligned timestamps by less than 2.5 ms: nothing to conceal.
            self.next_rtp = rtp;
            return true;
        }
        self.stats.lost += 1;
        self.next_rtp = self.next_rtp.saturating_add(n as u64);
        // A single lost packet may be rebuilt from the next one's in-band FEC.
        let data = (gap as usize == n).then(|| next.data.clone());
        let rebuilt = data.is_some_and(|data| self.run_decoder(Some(&data), true, n));
        if !rebuilt {
            self.conceal(n);
        }
        true
    }

    fn conceal(&mut self, samples: usize) {
        let samples = samples.div_ceil(PLC_QUANTUM) * PLC_QUANTUM;
        if !self.run_decoder(None, false, samples) {
            self.pcm.extend(std::iter::repeat_n(0.0, samples));
        }
    }

    /// Runs the decoder into `pcm`; false if it refused (or panicked on) the input.
    fn run_decoder(&mut self, packet: Option<&[u8]>, fec: bool, frame_size: usize) -> bool {
        let Some(decoder) = self.decoder.as_mut() else {
            return false;
        };
        let output = &mut self.decoded[..frame_size.min(MAX_PACKET_SAMPLES)];
        let result = catch_unwind(AssertUnwindSafe(|| match (packet, fec) {
            (Some(data), true) => decoder.decode_fec(data, frame_size, output),
            (Some(data), false) => decoder.decode(data, frame_size, output),
            (None, _) => decoder.decode(&[], frame_size, output),
        }));
        match result {
            Ok(Ok(n)) => {
                let n = n.min(self.decoded.len());
                self.pcm.extend(
                    self.decoded[..n]
                        .iter()
                        .map(|s| if s.is_finite() { *s } else { 0.0 }),
                );
                true
            }
            Ok(Err(_)) => false,
            Err(_) => {
                // The decoder's state is suspect after a panic: start a fresh one.
                self.decoder = OpusDecoder::new(48_000, 1).ok();
                false
            }
        }
    }

    pub fn stats(&self) -> RemoteAudioStats {
        let buffered = if self.playing {
            self.highest_end.saturating_sub(self.playout_rtp())
        } else {
            self.highest_end.saturating_sub(
                self.packets
                    .keys()
                    .next()
                    .copied()
                    .unwrap_or(self.highest_end),
            )
        };
        RemoteAudioStats {
            buffer_ms: (buffered as f64 / SAMPLES_PER_MS) as f32,
            target_ms: (self.target_offset_ms - self.min_transit_ms) as f32,
            delay_ms: if self.playing {
                (self.offset_ms - self.min_transit_ms) as f32
            } else {
                0.0
            },
            ..self.stats.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_durations_come_from_the_toc() {
        assert_eq!(opus_packet_samples(&[]), None);
        // CELT fullband 20 ms, one frame.
        assert_eq!(opus_packet_samples(&[0xf8, 0xff, 0xfe]), Some(960));
        // Hybrid fullband 20 ms (config 15), two frames (code 1).
        assert_eq!(opus_packet_samples(&[(15 << 3) | 1, 0, 0]), Some(1920));
        // SILK 60 ms, code 3 with 2 frames = 120 ms; with 3 frames it is too long.
        assert_eq!(opus_packet_samples(&[(3 << 3) | 3, 2]), Some(5760));
        assert_eq!(opus_packet_samples(&[(3 << 3) | 3, 3]), None);
        // Code 3 without its count byte, or with zero frames.
        assert_eq!(opus_packet_samples(&[(3 << 3) | 3]), None);
        assert_eq!(opus_packet_samples(&[(3 << 3) | 3, 0]), None);
    }

    #[test]
    fn garbage_is_counted_and_skipped_without_panicking() {
        let mut jb = JitterBuffer::new();
        let start = Instant::now();
        let mut out = vec![0.0; FRAME_SAMPLES];
        // Random-looking bytes with valid TOCs, and empty packets.
        let mut x: u32 = 12345;
        for i in 0..200u64 {
            let len = (i % 40) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            jb.push(i * 960, &data, start + Duration::from_millis(i * 20));
            for k in 0..2 {
                jb.pull(
                    start + Duration::from_millis(i * 20 + k * 10 + 60),
                    &mut out,
                );
                assert!(out.iter().all(|s| s.is_finite()));
            }
        }
        let stats = jb.stats();
        assert_eq!(stats.packets, 200);
        assert!(stats.invalid > 0, "{stats:?}");
    }

    #[test]
    fn extreme_and_jumping_rtp_times_do_not_panic_and_restart_the_stream() {
        let mut jb = JitterBuffer::new();
        let start = Instant::now();
        let mut out = vec![0.0; FRAME_SAMPLES];
        let silence = [0xf8, 0xff, 0xfe];
        let times = [0, u64::MAX - 100, 5, u64::MAX, 1 << 63, 960, 1920, 0, 2880];
        for (i, rtp) in times.into_iter().enumerate() {
            let at = start + Duration::from_millis(20 * i as u64);
            jb.push(rtp, &silence, at);
            for k in 0..2 {
                jb.pull(at + Duration::from_millis(10 * k + 50), &mut out);
            }
        }
        // A steady stream after all that plays normally.
        for i in 0..50u64 {
            let at = start + Duration::from_millis(1_000 + 20 * i);
            jb.push(10_000_000 + i * 960, &silence, at);
            jb.pull(at + Duration::from_millis(45), &mut out);
            jb.pull(at + Duration::from_millis(55), &mut out);
        }
        let stats = jb.stats();
        assert!(stats.playing, "{stats:?}");
        assert!(stats.delay_ms < 100.0, "{stats:?}");
    }
}
