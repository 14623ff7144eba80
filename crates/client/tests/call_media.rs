//! Rust participants in one call through the embedded SFU, on loopback: synthetic frames
//! (each carrying its sequence number and a checksum) must arrive whole and in order.

use std::collections::HashMap;
use std::time::Duration;

use confab_client::media::synthetic::{self, FrameStamp};
use confab_client::media::{
    CallEvent, CallSession, CallSessionOptions, EncodedFrame, LocalTrack, MediaKind,
    SfuCredentials, TrackSpec, VideoCodec,
};
use confab_sfu::{AccessToken, ApiSecret, Sfu, SfuConfig, VideoGrant};

const KEY: &str = "test-key";
const SECRET: &str = "a-test-secret-of-enough-length";

struct TestSfu {
    sfu: Sfu,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

async fn start_sfu_at(port: u16) -> TestSfu {
    let sfu = Sfu::start(SfuConfig::loopback(KEY, ApiSecret::new(SECRET)))
        .await
        .expect("the SFU starts");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().nest("/sfu", sfu.router());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    TestSfu {
        sfu,
        url: format!("http://{addr}/sfu"),
        server,
    }
}

async fn start_sfu() -> TestSfu {
    start_sfu_at(0).await
}

fn token(room: &str, identity: &str, can_publish: bool) -> String {
    confab_sfu::token::mint(
        KEY,
        &ApiSecret::new(SECRET),
        &AccessToken {
            identity: identity.into(),
            name: identity.to_uppercase(),
            grant: VideoGrant {
                room: room.into(),
                room_join: true,
                can_publish: Some(can_publish),
                ..VideoGrant::default()
            },
            ttl: Duration::from_secs(600),
        },
    )
}

async fn join(sfu: &TestSfu, room: &str, identity: &str) -> CallSession {
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

/// Sends `count` video frames at 30 fps (a keyframe every 15) and audio every 20 ms.
async fn send_av(video: LocalTrack, audio: LocalTrack, count: u64) {
    let start = std::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(33));
    for seq in 0..count {
        ticker.tick().await;
        let stamp = FrameStamp { seq, sent_at_micros: synthetic::now_micros() };
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
struct Received {
    /// Per (identity, kind): the sequence numbers in arrival order.
    seqs: HashMap<(String, MediaKind), Vec<u64>>,
    damaged: u64,
}

impl Received {
    fn record(&mut self, event: &CallEvent) {
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

    /// From the first frame received on, every frame up to `last`, in order.
    fn assert_complete(&self, identity: &str, kind: MediaKind, last: u64, whose: &str) {
        let seqs = self
            .seqs
            .get(&(identity.to_owned(), kind))
            .unwrap_or_else(|| panic!("{whose} received no {kind:?} from {identity}"));
        let first = seqs[0];
        let expected: Vec<u64> = (first..=last).collect();
        assert_eq!(seqs, &expected, "{whose}: {kind:?} from {identity} arrived with gaps or out of order");
        assert!(first < 30, "{whose}: {kind:?} from {identity} started late, at frame {first}");
        assert_eq!(self.damaged, 0, "{whose} received damaged frames");
    }
}

async fn publish_av(session: &CallSession) -> (LocalTrack, LocalTrack) {
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
async fn collect(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_participants_exchange_audio_and_video_whole_and_in_order() {
    let sfu = start_sfu().await;
    let mut ada = join(&sfu, "default:pair", "ada").await;
    let mut bob = join(&sfu, "default:pair", "bob").await;
    let (ada_video, ada_audio) = publish_av(&ada).await;
    let (bob_video, bob_audio) = publish_av(&bob).await;
    const FRAMES: u64 = 120;
    let senders = tokio::spawn(async move {
        tokio::join!(
            send_av(ada_video, ada_audio, FRAMES),
            send_av(bob_video, bob_audio, FRAMES)
        );
    });
    let done = |r: &Received, _: &CallEvent| {
        r.seqs.values().filter(|s| s.last() == Some(&(FRAMES - 1))).count() == 2
    };
    let mut at_ada = Received::default();
    let mut at_bob = Received::default();
    tokio::join!(
        collect(&mut ada, &mut at_ada, Duration::from_secs(20), done),
        collect(&mut bob, &mut at_bob, Duration::from_secs(20), done),
    );
    senders.await.unwrap();
    for kind in [MediaKind::Video, MediaKind::Audio] {
        at_ada.assert_complete("bob", kind, FRAMES - 1, "ada");
        at_bob.assert_complete("ada", kind, FRAMES - 1, "bob");
    }
    let stats = sfu.sfu.stats().await;
    assert!(stats.frames_forwarded >= 4 * (FRAMES - 30));
    ada.leave().await;
    bob.leave().await;
    sfu.server.abort();
}
