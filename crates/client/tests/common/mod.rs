//! Shared by the call media tests: an SFU on loopback, tokens, participants that send
//! synthetic frames, and a record of what arrived.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use confab_client::media::synthetic::{self, FrameStamp};
use confab_client::media::{
    CallEvent, CallSession, CallSessionOptions, EncodedFrame, LocalTrack, MediaKind,
    SfuCredentials, TrackSpec, VideoCodec,
};
use confab_sfu::{AccessToken, ApiSecret, SfuConfig, SfuLimits};

pub const KEY: &str = "test-key";
pub const SECRET: &str = "a-test-secret-of-enough-length";

pub type TestSfu = confab_sfu::loopback::LoopbackSfu;

pub async fn start_sfu_at(port: u16) -> TestSfu {
    start_sfu_with(port, SfuLimits::default()).await
}

pub async fn start_sfu_with(port: u16, limits: SfuLimits) -> TestSfu {
    let mut config = SfuConfig::loopback(KEY, ApiSecret::new(SECRET));
    config.limits = limits;
    start_sfu_config(port, config).await
}

pub async fn start_sfu_config(port: u16, config: SfuConfig) -> TestSfu {
    TestSfu::start(config, port).await.expect("the SFU starts")
}

pub async fn start_sfu() -> TestSfu {
    start_sfu_at(0).await
}

pub fn token(room: &str, identity: &str, can_publish: bool) -> String {
    let name = identity.to_uppercase();
    let claims =
        AccessToken::room_join(room, identity, &name, can_publish, Duration::from_secs(600));
    confab_sfu::token::mint(KEY, &ApiSecret::new(SECRET), &claims)
}

pub async fn join(sfu: &TestSfu, room: &str, identity: &str) -> CallSession {
    CallSession::connect(
        SfuCredentials {
            url: sfu.url.clone(),
            token: token(room, identity, true),
        },
        CallSessionOptions::default(),
    )
    .await
    .expect("joins")
}

/// Sends `count` video frames (and a tail, see [`TAIL_FRAMES`]) at 30 fps (a keyframe every 15) and audio every 20 ms.
/// Frames sent after the `count` a test checks: a datagram lost from the last checked frame's
/// tail is only noticed (and resent) when a later one arrives.
pub const TAIL_FRAMES: u64 = 15;

pub async fn send_av(video: LocalTrack, audio: LocalTrack, count: u64) {
    let start = std::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(33));
    for seq in 0..count + TAIL_FRAMES {
        ticker.tick().await;
        let stamp = FrameStamp {
            seq,
            sent_at_micros: synthetic::now_micros(),
        };
        let keyframe = seq % 15 == 0;
        let size = if keyframe { 12_000 } else { 3_000 };
        let ts = start.elapsed();
        video
            .send_frame_waiting(EncodedFrame {
                data: synthetic::video_frame(VideoCodec::H264, stamp, keyframe, size).into(),
                timestamp: ts,
                rid: None,
                audio_level: None,
            })
            .await
            .unwrap();
        audio
            .send_frame_waiting(EncodedFrame {
                data: synthetic::audio_frame(stamp, 120).into(),
                timestamp: ts,
                rid: None,
                audio_level: Some(-30),
            })
            .await
            .unwrap();
    }
}

#[derive(Default, Debug)]
pub struct Received {
    /// Per (identity, kind): the sequence numbers in arrival order.
    pub seqs: HashMap<(String, MediaKind), Vec<u64>>,
    pub damaged: u64,
}

impl Received {
    pub fn record(&mut self, event: &CallEvent) {
        if let CallEvent::Frame(f) = event {
            match synthetic::read_frame(&f.data) {
                Some(stamp) => self
                    .seqs
                    .entry((f.identity.clone(), f.kind))
                    .or_default()
                    .push(stamp.seq),
                None => self.damaged += 1,
            }
        }
    }

    /// From the first frame received on, every frame up to `last`, in order, whatever came
    /// after it (with loss, a frame's lost tail is only noticed, and retransmitted, when a
    /// later packet arrives: senders keep sending past `last`).
    pub fn assert_complete_through(&self, identity: &str, kind: MediaKind, last: u64, whose: &str) {
        let seqs = self
            .seqs
            .get(&(identity.to_owned(), kind))
            .unwrap_or_else(|| panic!("{whose} received no {kind:?} from {identity}"));
        let upto: Vec<u64> = seqs.iter().copied().take_while(|s| *s <= last).collect();
        let first = upto.first().copied().unwrap_or(u64::MAX);
        let expected: Vec<u64> = (first..=last).collect();
        assert_eq!(
            upto, expected,
            "{whose}: {kind:?} from {identity} arrived with gaps or out of order"
        );
        assert!(
            first < 30,
            "{whose}: {kind:?} from {identity} started late, at frame {first}"
        );
        assert_eq!(self.damaged, 0, "{whose} received damaged frames");
    }

    /// From the first frame received on, every frame up to `last`, in order.
    pub fn assert_complete(&self, identity: &str, kind: MediaKind, last: u64, whose: &str) {
        self.assert_complete_through(identity, kind, last, whose);
    }
}

pub async fn publish_av(session: &CallSession) -> (LocalTrack, LocalTrack) {
    let video = session
        .publish(TrackSpec::camera(VideoCodec::H264, 640, 360))
        .await
        .expect("video published");
    let audio = session
        .publish(TrackSpec::microphone())
        .await
        .expect("audio published");
    (video, audio)
}

/// Reads events until `until` says stop or `limit` passes.
pub async fn collect(
    session: &mut CallSession,
    received: &mut Received,
    limit: Duration,
    mut until: impl FnMut(&Received, &CallEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, session.next_event()).await {
        received.record(&event);
        if until(received, &event) {
            return;
        }
    }
}
