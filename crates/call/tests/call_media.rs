//! Two `CallMedia`s, as two apps would run them, through a real SFU on loopback, with the fake
//! test-pattern camera: what reaches each one's page (the sink), and what each shows of the
//! other.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_call::{
    frames, AudioSettings, CallDevices, CallMedia, CallMediaOptions, MediaAccess, MediaSink,
    MediaState, MediaView, VideoTrackView,
};
use confab_client::media::{frame_size, SfuCredentials};
use confab_sfu::loopback::LoopbackSfu;
use confab_sfu::{ApiSecret, SfuConfig};

const KEY: &str = "call-media-test";
const SECRET: &str = "call-media-test-secret-of-32-bytes!!";

/// The tests with two publishing apps take turns: each encodes three 720p layers per app, and
/// side by side in a debug build on a two-core CI machine they starved each other (13 frames
/// a second, a first decoded picture later than 5 s). Rates are the benchmarks' business.
static TWO_APPS_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start_sfu() -> LoopbackSfu {
    start_sfu_at(0).await
}

/// On `port` (0: any free one); the same port again is the SFU restarted.
async fn start_sfu_at(port: u16) -> LoopbackSfu {
    let config = SfuConfig::loopback(KEY, ApiSecret::new(SECRET));
    LoopbackSfu::start(config, port)
        .await
        .expect("the SFU starts")
}

fn port_of(sfu: &LoopbackSfu) -> u16 {
    let authority = sfu.url.trim_start_matches("http://").split('/').next();
    let port = authority.and_then(|a| a.rsplit(':').next());
    port.and_then(|p| p.parse().ok()).expect("the SFU's port")
}

fn credentials(sfu: &LoopbackSfu, identity: &str) -> SfuCredentials {
    SfuCredentials {
        url: sfu.url.clone(),
        token: sfu.token(
            "default:standup",
            identity,
            &format!("{identity} name"),
            true,
        ),
    }
}

/// What a page would have received.
#[derive(Default)]
struct Page {
    views: Mutex<Vec<MediaView>>,
    frames: Mutex<Vec<(Instant, Vec<u8>)>>,
}

impl MediaSink for Page {
    fn view(&self, view: &MediaView) {
        self.views.lock().unwrap().push(view.clone());
    }
    fn video_frame(&self, message: Vec<u8>) {
        self.frames.lock().unwrap().push((Instant::now(), message));
    }
}

fn options(identity: &str) -> CallMediaOptions {
    CallMediaOptions {
        devices: CallDevices {
            camera: confab_devices::catalog::FAKE_CAMERA_KEY.to_owned(),
            microphone: confab_devices::catalog::FAKE_MICROPHONE_KEY.to_owned(),
            // No speaker in a plain test run: the null speaker plays nowhere, in real time.
            speaker: confab_call::audio::NULL_SPEAKER_KEY.to_owned(),
        },
        identity: identity.to_owned(),
        name: identity.to_owned(),
        microphone_muted: false,
        camera_enabled: true,
        publish: true,
        audio: AudioSettings::default(),
    }
}

async fn until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn track_sid_of(message: &[u8]) -> String {
    let n = message[3] as usize;
    String::from_utf8_lossy(&message[16..16 + n]).into_owned()
}

/// Alice and Bob in one call, as two apps; Alice's page attached. Resolves once Alice's view
/// lists Bob with his camera and microphone, to both, her page, and Bob's camera track.
async fn alice_sees_bob(sfu: &LoopbackSfu) -> (CallMedia, CallMedia, Arc<Page>, VideoTrackView) {
    let alice = CallMedia::start(
        MediaAccess::Sfu(credentials(sfu, "alice")),
        options("alice"),
    );
    let bob = CallMedia::start(MediaAccess::Sfu(credentials(sfu, "bob")), options("bob"));
    let alice_page = Arc::new(Page::default());
    alice.attach(alice_page.clone()).await;
    let bob_video = until(
        "bob's camera in alice's view",
        Duration::from_secs(10),
        || {
            let view = alice.view();
            let bob = view.participants.iter().find(|p| p.identity == "bob")?;
            assert_eq!(bob.name, "bob name");
            bob.audio.as_ref()?;
            bob.video.clone()
        },
    )
    .await;
    (alice, bob, alice_page, bob_video)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_see_each_other_s_camera_and_mute_state() {
    let _turn = TWO_APPS_AT_A_TIME.lock().await;
    let sfu = start_sfu().await;
    let (alice, bob, alice_page, bob_video) = alice_sees_bob(&sfu).await;
    assert_eq!(alice.view().media, MediaState::Connected);
    assert_eq!(bob_video.codec.to_ascii_lowercase(), "video/h264");

    // Alice's page gets Bob's frames still encoded, starting with a keyframe whose SPS gives
    // a layer's size; asking for a small tile brings the 320x180 layer.
    alice.set_video_view(&bob_video.track_sid, 320, 180).await;
    let started = Instant::now();
    let small = until("a 320x180 keyframe", Duration::from_secs(5), || {
        let frames = alice_page.frames.lock().unwrap();
        frames.iter().find_map(|(at, m)| {
            let keyframe = m[2] & 1 == 1;
            let size = frame_size::h264_size(&m[16 + m[3] as usize..]);
            (*at >= started && keyframe && size == Some((320, 180))).then_some(m.clone())
        })
    })
    .await;
    assert_eq!(small[0], frames::VIDEO_FRAME);
    assert_eq!(small[1], frames::CODEC_H264);
    assert_eq!(track_sid_of(&small), bob_video.track_sid);
    // ... and a large tile the 1280x720 layer.
    alice.set_video_view(&bob_video.track_sid, 1280, 720).await;
    let started = Instant::now();
    until("a 1280x720 keyframe", Duration::from_secs(5), || {
        let frames = alice_page.frames.lock().unwrap();
        frames
            .iter()
            .any(|(at, m)| {
                let size = frame_size::h264_size(&m[16 + m[3] as usize..]);
                *at >= started && m[2] & 1 == 1 && size == Some((1280, 720))
            })
            .then_some(())
    })
    .await;
    // Frames keep coming: at least a third of the camera's 30 fps over three seconds. (A
    // starved machine drops frames by design, the newest wins: with both cores kept busy by
    // other work it measured 24 in two seconds; a stall or keyframes alone would be a handful.)
    let counted_from = alice_page.frames.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let in_three_seconds = alice_page.frames.lock().unwrap().len() - counted_from;
    assert!(
        in_three_seconds >= 30,
        "{in_three_seconds} frames in three seconds"
    );

    // Bob mutes: Alice sees it within a second.
    let muted_at = Instant::now();
    let bob_view = bob.set_microphone_muted(true).await.unwrap();
    assert!(bob_view.local.microphone_muted);
    until("bob muted in alice's view", Duration::from_secs(1), || {
        let view = alice.view();
        let bob = view.participants.iter().find(|p| p.identity == "bob")?;
        bob.audio.as_ref().filter(|a| a.muted).map(|_| ())
    })
    .await;
    eprintln!("mute seen after {:?}", muted_at.elapsed());

    // Bob turns his camera off: his video is muted for Alice and no more frames come.
    bob.set_camera_enabled(false).await.unwrap();
    until(
        "bob's camera off in alice's view",
        Duration::from_secs(1),
        || {
            let view = alice.view();
            let bob = view.participants.iter().find(|p| p.identity == "bob")?;
            bob.video.as_ref().filter(|v| v.muted).map(|_| ())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_off = alice_page.frames.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        alice_page.frames.lock().unwrap().len(),
        after_off,
        "frames after camera off"
    );

    // On again: frames again, from a keyframe.
    bob.set_camera_enabled(true).await.unwrap();
    let started = Instant::now();
    until(
        "frames after the camera is back",
        Duration::from_secs(3),
        || {
            let frames = alice_page.frames.lock().unwrap();
            frames
                .iter()
                .any(|(at, m)| *at >= started && m[2] & 1 == 1)
                .then_some(())
        },
    )
    .await;

    // A hidden tile is unsubscribed: nothing more arrives for it.
    alice.set_video_view(&bob_video.track_sid, 0, 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hidden_from = alice_page.frames.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        alice_page.frames.lock().unwrap().len(),
        hidden_from,
        "frames for a hidden tile"
    );

    // The stats panel's rows: Bob's video coming in with its codec and size, ours going out.
    // (Polled: on a starved machine the SFU can fall back to a smaller layer for a moment,
    // when the one asked for pauses.)
    alice.set_video_view(&bob_video.track_sid, 640, 360).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let polled_from = Instant::now();
    let rows = loop {
        let rows = alice.stats().await;
        let at_360p = rows.iter().any(|r| {
            r.direction == "in"
                && r.kind == "video"
                && (r.width, r.height) == (Some(640), Some(360))
        });
        if at_360p || polled_from.elapsed() > Duration::from_secs(6) {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let incoming = rows
        .iter()
        .find(|r| r.direction == "in" && r.kind == "video")
        .unwrap_or_else(|| panic!("no incoming video row in {rows:?}"));
    assert_eq!(incoming.identity, "bob");
    assert_eq!(incoming.codec.to_ascii_lowercase(), "video/h264");
    assert_eq!((incoming.width, incoming.height), (Some(640), Some(360)));
    assert!(incoming.bitrate_bps > 0, "{incoming:?}");
    let full = rows
        .iter()
        .find(|r| r.direction == "out" && r.kind == "video" && r.rid.as_deref() == Some("f"))
        .unwrap_or_else(|| panic!("no outgoing 720p row in {rows:?}"));
    // The send bandwidth estimate comes from the SFU's transport-wide congestion feedback.
    let estimate = full.available_bps.expect("a send bandwidth estimate");
    eprintln!("send bandwidth estimate: {estimate} bit/s");
    assert!(estimate >= 300_000, "{estimate}");

    // Bob leaves: he is gone from Alice's view.
    bob.stop().await;
    until("bob gone", Duration::from_secs(3), || {
        (!alice
            .view()
            .participants
            .iter()
            .any(|p| p.identity == "bob"))
        .then_some(())
    })
    .await;
    alice.stop().await;
    assert_eq!(alice.view().media, MediaState::Ended);
    // The page saw the views as they changed, ending with the last.
    assert_eq!(
        alice_page.views.lock().unwrap().last().map(|v| v.media),
        Some(MediaState::Ended)
    );
}

#[tokio::test]
async fn stream_s_own_sfu_is_reported_as_unsupported_and_the_controls_still_answer() {
    // The shape of Stream's join answer (its SFU speaks Stream's protocol, not LiveKit's).
    let credentials: confab_protocol::CallCredentials = serde_json::from_value(serde_json::json!({
        "server": {"url": "https://sfu-9c0dc03.ovh-lim1.stream-io-video.com/twirp",
                   "ws_endpoint": "wss://sfu-9c0dc03.ovh-lim1.stream-io-video.com/ws",
                   "edge_name": "sfu-9c0dc03.ovh-lim1.stream-io-video.com"},
        "token": "a-token", "ice_servers": []
    }))
    .unwrap();
    let access = MediaAccess::from_credentials(Some(&credentials));
    assert!(matches!(access, MediaAccess::Unsupported(_)));
    let media = CallMedia::start(access, options("carol"));
    let page = Arc::new(Page::default());
    media.attach(page.clone()).await;
    let view = media.view();
    assert_eq!(view.media, MediaState::Unsupported);
    assert!(view
        .message
        .as_deref()
        .unwrap_or_default()
        .contains("Stream's service isn't supported yet"));
    let muted = media.set_microphone_muted(true).await.unwrap();
    assert!(muted.local.microphone_muted);
    media.stop().await;
    assert_eq!(media.view().media, MediaState::Ended);

    // Confab's coordinator hands out a LiveKit endpoint: media is on.
    let ours: confab_protocol::CallCredentials = serde_json::from_value(serde_json::json!({
        "server": {"url": "http://127.0.0.1:9/video/sfu", "ws_endpoint": "ws://127.0.0.1:9/video/sfu/rtc/v1", "edge_name": "local"},
        "token": "t", "ice_servers": []
    }))
    .unwrap();
    assert!(matches!(
        MediaAccess::from_credentials(Some(&ours)),
        MediaAccess::Sfu(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_sfu_shows_a_countdown_and_is_tried_again() {
    // Nothing listens on this port (bound, then closed).
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let credentials = SfuCredentials {
        url: format!("http://127.0.0.1:{port}/sfu"),
        token: "unused".into(),
    };
    let mut opts = options("dave");
    opts.camera_enabled = false;
    let media = CallMedia::start(MediaAccess::Sfu(credentials), opts);
    let mut views = media.watch();
    let mut attempts = Vec::new();
    while attempts.len() < 3 {
        views.changed().await.unwrap();
        let view = views.borrow_and_update().clone();
        if view.media == MediaState::Reconnecting
            && attempts.last().map(|(a, _)| *a) != Some(view.attempt)
        {
            attempts.push((view.attempt, view.retry_in_ms));
        }
    }
    assert_eq!(attempts, vec![(1, 1000), (2, 2000), (3, 4000)]);
    media.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_fails_is_off_for_everyone_and_rust_decoding_sends_pictures() {
    let _turn = TWO_APPS_AT_A_TIME.lock().await;
    let sfu = start_sfu().await;
    let (alice, bob, alice_page, bob_video) = alice_sees_bob(&sfu).await;

    // A webview without VideoDecoder: Alice's page gets Bob's pictures decoded in Rust, fitted
    // to the tile, carrying the pattern's time code.
    alice.set_decode_in_rust(true).await;
    alice.set_video_view(&bob_video.track_sid, 640, 360).await;
    let started = Instant::now();
    let is_360p_decoded = |m: &Vec<u8>| {
        // The 360p layer, once the SFU has switched to it.
        m[0] == confab_call::rust_decode::DECODED_FRAME && m[4..12] == [128, 2, 0, 0, 104, 1, 0, 0]
    };
    until("a decoded picture", Duration::from_secs(10), || {
        let frames = alice_page.frames.lock().unwrap();
        frames
            .iter()
            .any(|(at, m)| *at >= started && is_360p_decoded(m))
            .then_some(())
    })
    .await;
    // The pictures are live: the freshest of a second's worth carries a recent time code. (One
    // picture alone can be late on a loaded machine: a CI run in a debug build once measured
    // one 764 ms old; release builds take tens of milliseconds.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let ages: Vec<u64> = alice_page
        .frames
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, m)| *at >= started && is_360p_decoded(m))
        .map(|(at, picture)| {
            let w = u32::from_le_bytes(picture[4..8].try_into().unwrap()) as usize;
            let h = u32::from_le_bytes(picture[8..12].try_into().unwrap()) as usize;
            assert_eq!((w, h), (640, 360));
            let rgba = &picture[16 + picture[3] as usize..];
            let drawn = confab_devices::fake::read_timestamp_code(rgba, w, h).expect("a time code");
            // How old the picture was when it reached the page.
            (now_ms - at.elapsed().as_millis() as u64).saturating_sub(drawn)
        })
        .collect();
    assert!(!ages.is_empty(), "no picture in a second");
    let freshest = *ages.iter().min().unwrap();
    assert!(
        freshest < 1000,
        "the freshest picture was {freshest} ms old: {ages:?}"
    );

    // Bob's camera fails mid-call: off for everyone, with a message for Bob.
    bob.simulate_camera_failure().await;
    until("bob's camera error", Duration::from_secs(2), || {
        let local = bob.view().local;
        (!local.camera_enabled && local.camera_error.is_some()).then_some(())
    })
    .await;
    assert!(bob
        .view()
        .local
        .camera_error
        .unwrap()
        .contains("camera stopped"));
    until("bob's camera off for alice", Duration::from_secs(2), || {
        let view = alice.view();
        let bob = view.participants.iter().find(|p| p.identity == "bob")?;
        bob.video.as_ref().filter(|v| v.muted).map(|_| ())
    })
    .await;
    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an X server (DISPLAY): the test session (scripts/test-session.sh under xvfb-run) gives one"]
async fn a_shared_window_reaches_the_other_app_and_stopping_or_closing_it_takes_it_away() {
    let _turn = TWO_APPS_AT_A_TIME.lock().await;
    use confab_screen::pattern_window::PatternWindow;
    let sfu = start_sfu().await;
    let (alice, bob, alice_page, _) = alice_sees_bob(&sfu).await;
    let window = PatternWindow::open("Shared by bob", 960, 540, Duration::from_secs(60))
        .expect("the pattern window opens");
    // The server maps the window a moment after it is made.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view = bob
        .start_share(&window.source_id(), "Shared by bob")
        .await
        .expect("sharing starts");
    assert_eq!(view.local.sharing.as_deref(), Some("Shared by bob"));

    // Alice sees it as Bob's screen, and gets its frames: H.264 keyframes of the window's size.
    // Bob's screen in Alice's view: Some(Some(track)) shared, Some(None) not, None no Bob.
    let bobs_screen = |alice: &CallMedia| {
        let view = alice.view();
        let bob = view.participants.iter().find(|p| p.identity == "bob")?;
        Some(bob.screen.clone())
    };
    let screen = until(
        "bob's screen in alice's view",
        Duration::from_secs(10),
        || bobs_screen(&alice).flatten(),
    )
    .await;
    alice.set_video_view(&screen.track_sid, 960, 540).await;
    until(
        "a 960x540 keyframe of the screen",
        Duration::from_secs(5),
        || {
            let frames = alice_page.frames.lock().unwrap();
            frames.iter().find_map(|(_, m)| {
                let keyframe = m[2] & 1 == 1;
                let size = frame_size::h264_size(&m[16 + m[3] as usize..]);
                (track_sid_of(m) == screen.track_sid && keyframe && size == Some((960, 540)))
                    .then_some(())
            })
        },
    )
    .await;
    let stats = bob.share_stats().await.expect("share figures");
    assert!(stats.frames_sent > 0, "{stats:?}");

    // Bob stops: the screen leaves Alice's view.
    let view = bob.stop_share().await.expect("stops");
    assert_eq!(view.local.sharing, None);
    until(
        "bob's screen gone from alice's view",
        Duration::from_secs(5),
        || bobs_screen(&alice)?.is_none().then_some(()),
    )
    .await;

    // Shared again, then the window closes: Bob is told, and it leaves Alice's view.
    bob.start_share(&window.source_id(), "Shared by bob")
        .await
        .expect("sharing starts again");
    until("bob's screen back", Duration::from_secs(10), || {
        bobs_screen(&alice).flatten()
    })
    .await;

    // The SFU restarts: both calls rejoin by themselves, Bob's session publishes his share
    // again and it reaches Alice with pictures, without Bob choosing again.
    let port = port_of(&sfu);
    sfu.stop().await;
    until(
        "bob's screen gone with the SFU",
        Duration::from_secs(5),
        || (bobs_screen(&alice).flatten().is_none()).then_some(()),
    )
    .await;
    let _sfu = start_sfu_at(port).await;
    let screen = until(
        "bob's screen back after the SFU restarted",
        Duration::from_secs(20),
        || bobs_screen(&alice).flatten(),
    )
    .await;
    assert_eq!(bob.view().local.sharing.as_deref(), Some("Shared by bob"));
    let restarted = Instant::now();
    alice.set_video_view(&screen.track_sid, 960, 540).await;
    until(
        "a keyframe of the screen after the restart",
        Duration::from_secs(10),
        || {
            let frames = alice_page.frames.lock().unwrap();
            frames
                .iter()
                .any(|(at, m)| {
                    *at >= restarted && track_sid_of(m) == screen.track_sid && m[2] & 1 == 1
                })
                .then_some(())
        },
    )
    .await;
    drop(window);
    until("bob told the window closed", Duration::from_secs(5), || {
        let view = bob.view();
        (view.local.sharing.is_none() && view.local.share_error.is_some()).then_some(())
    })
    .await;
    assert!(bob
        .view()
        .local
        .share_error
        .unwrap()
        .contains("window was closed"));
    until(
        "the closed window gone from alice's view",
        Duration::from_secs(5),
        || bobs_screen(&alice)?.is_none().then_some(()),
    )
    .await;

    // A source that is not there is refused with a clear error, and nothing is published.
    let err = bob.start_share("x11:window:0x7", "gone").await.unwrap_err();
    assert_eq!(err.code(), "source_gone", "{err}");
    alice.stop().await;
    bob.stop().await;
}
