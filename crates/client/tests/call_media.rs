//! Rust participants in one call through the embedded SFU, on loopback: synthetic frames
//! (each carrying its sequence number and a checksum) must arrive whole and in order, and
//! what participants do (mute, leave, speak) must reach the others.

mod common;

use std::time::Duration;

use common::*;
use confab_client::media::{CallEvent, MediaKind};

/// One call at a time: these tests bound how soon things arrive (within a second), and two
/// calls side by side in a debug build on a loaded two-core CI machine can miss that.
static ONE_CALL_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_participants_exchange_audio_and_video_whole_and_in_order() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
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
        r.seqs
            .values()
            .filter(|s| s.last() == Some(&(FRAMES - 1)))
            .count()
            == 2
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_participants_each_receive_the_other_three_whole_and_in_order() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let sfu = start_sfu().await;
    let names = ["ada", "bob", "cy", "dee"];
    let mut sessions = Vec::new();
    for name in names {
        sessions.push(join(&sfu, "default:four", name).await);
    }
    let mut senders = Vec::new();
    for session in &sessions {
        senders.push(publish_av(session).await);
    }
    const FRAMES: u64 = 90;
    let sending = tokio::spawn(async move {
        let all = senders
            .into_iter()
            .map(|(video, audio)| send_av(video, audio, FRAMES));
        futures_util::future::join_all(all).await;
    });
    let mut received: Vec<Received> = (0..names.len()).map(|_| Received::default()).collect();
    let done = |r: &Received, _: &CallEvent| {
        r.seqs
            .values()
            .filter(|s| s.last() == Some(&(FRAMES - 1)))
            .count()
            == 6
    };
    let collecting = sessions
        .iter_mut()
        .zip(received.iter_mut())
        .map(|(s, r)| collect(s, r, Duration::from_secs(30), done));
    futures_util::future::join_all(collecting).await;
    sending.await.unwrap();
    for (i, at) in received.iter().enumerate() {
        for (j, from) in names.iter().enumerate() {
            if i == j {
                continue;
            }
            for kind in [MediaKind::Video, MediaKind::Audio] {
                at.assert_complete(from, kind, FRAMES - 1, names[i]);
            }
        }
    }
    for s in sessions {
        s.leave().await;
    }
}

/// Waits for the first event `matches` accepts; fails after `limit`.
async fn expect_event(
    session: &mut confab_client::media::CallSession,
    limit: Duration,
    what: &str,
    mut matches: impl FnMut(&CallEvent) -> bool,
) -> CallEvent {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, session.next_event()).await {
            Ok(Some(event)) if matches(&event) => return event,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the session ended while waiting for {what}"),
            Err(_) => panic!("no {what} within {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_unmute_and_leave_reach_the_others_within_a_second() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let sfu = start_sfu().await;
    let ada = join(&sfu, "default:mute", "ada").await;
    let mut bob = join(&sfu, "default:mute", "bob").await;
    let audio = ada
        .publish(confab_client::media::TrackSpec::microphone())
        .await
        .unwrap();
    expect_event(&mut bob, Duration::from_secs(5), "ada's microphone", |e| {
        matches!(e, CallEvent::TrackPublished { identity, track } if identity == "ada" && track.kind == MediaKind::Audio && !track.muted)
    })
    .await;
    audio.set_muted(true).await;
    expect_event(
        &mut bob,
        Duration::from_secs(1),
        "ada muted",
        |e| matches!(e, CallEvent::TrackMuted { identity, muted: true, .. } if identity == "ada"),
    )
    .await;
    audio.set_muted(false).await;
    expect_event(
        &mut bob,
        Duration::from_secs(1),
        "ada unmuted",
        |e| matches!(e, CallEvent::TrackMuted { identity, muted: false, .. } if identity == "ada"),
    )
    .await;
    ada.leave().await;
    expect_event(
        &mut bob,
        Duration::from_secs(1),
        "ada leaving",
        |e| matches!(e, CallEvent::ParticipantLeft { identity, .. } if identity == "ada"),
    )
    .await;
    assert_eq!(
        sfu.sfu.participants("default:mute").await,
        vec!["bob".to_owned()]
    );
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_video_track_marked_as_a_screen_share_comes_and_goes() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    use confab_client::media::{TrackSource, TrackSpec, VideoCodec};
    let sfu = start_sfu().await;
    let ada = join(&sfu, "default:share", "ada").await;
    let mut bob = join(&sfu, "default:share", "bob").await;
    let (camera, _audio) = publish_av(&ada).await;
    let mut spec = TrackSpec::camera(VideoCodec::H264, 1280, 720);
    spec.name = "screen".into();
    spec.source = TrackSource::ScreenShare;
    let screen = ada
        .publish(spec)
        .await
        .expect("the screen share is published");
    let published = expect_event(&mut bob, Duration::from_secs(5), "ada's screen", |e| {
        matches!(e, CallEvent::TrackPublished { identity, track } if identity == "ada" && track.source == "screen_share")
    })
    .await;
    let CallEvent::TrackPublished { track, .. } = published else {
        unreachable!()
    };
    assert_eq!(track.kind, MediaKind::Video);
    let screen_sid = screen.sid().to_owned();
    assert_eq!(track.sid, screen_sid);
    screen.unpublish().await;
    expect_event(&mut bob, Duration::from_secs(3), "ada's screen gone", |e| {
        matches!(e, CallEvent::TrackUnpublished { identity, track_sid } if identity == "ada" && *track_sid == screen_sid)
    })
    .await;
    // The camera stays.
    let left: Vec<String> = bob
        .participants()
        .await
        .into_iter()
        .filter(|p| p.identity == "ada")
        .flat_map(|p| p.tracks.into_iter().map(|t| t.sid))
        .collect();
    assert!(left.contains(&camera.sid().to_owned()), "{left:?}");
    assert!(!left.contains(&screen_sid));
    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_s_keyframe_request_reaches_the_publisher() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let sfu = start_sfu().await;
    let mut ada = join(&sfu, "default:kf", "ada").await;
    let mut bob = join(&sfu, "default:kf", "bob").await;
    let (video, _audio) = publish_av(&ada).await;
    let sending = keep_sending_video(video.clone());
    // Bob gets Ada's video, then a decoder of his loses its place and asks.
    expect_event(
        &mut bob,
        Duration::from_secs(10),
        "ada's video",
        |e| matches!(e, CallEvent::Frame(f) if f.kind == MediaKind::Video),
    )
    .await;
    // The requests the subscription itself caused are over by now (throttled to one per 0.5 s).
    tokio::time::sleep(Duration::from_millis(800)).await;
    while tokio::time::timeout(Duration::from_millis(10), ada.next_event())
        .await
        .is_ok()
    {}
    bob.request_keyframe(video.sid()).await;
    expect_event(
        &mut ada,
        Duration::from_secs(2),
        "bob's keyframe request",
        |e| matches!(e, CallEvent::KeyframeRequested { track_sid, .. } if track_sid == video.sid()),
    )
    .await;
    sending.abort();
    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loud_microphone_makes_its_owner_the_speaker_and_silence_ends_it() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let sfu = start_sfu().await;
    let ada = join(&sfu, "default:talk", "ada").await;
    let mut bob = join(&sfu, "default:talk", "bob").await;
    let audio = ada
        .publish(confab_client::media::TrackSpec::microphone())
        .await
        .unwrap();
    let talk = |level: i8, from: u64, frames: u64| {
        let audio = audio.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for seq in from..from + frames {
                tick.tick().await;
                let stamp = confab_client::media::synthetic::FrameStamp {
                    seq,
                    sent_at_micros: 0,
                };
                let _ = audio.send_frame(confab_client::media::EncodedFrame {
                    data: confab_client::media::synthetic::audio_frame(stamp, 80).into(),
                    timestamp: Duration::from_millis(seq * 20),
                    rid: None,
                    audio_level: Some(level),
                });
            }
        }
    };
    let loud = tokio::spawn(talk(-10, 0, 100));
    expect_event(
        &mut bob,
        Duration::from_secs(3),
        "ada speaking",
        |e| matches!(e, CallEvent::Speaking { identity, speaking: true, .. } if identity == "ada"),
    )
    .await;
    expect_event(
        &mut bob,
        Duration::from_secs(1),
        "ada as dominant speaker",
        |e| matches!(e, CallEvent::DominantSpeaker { identity: Some(who) } if who == "ada"),
    )
    .await;
    loud.await.unwrap();
    let quiet = tokio::spawn(talk(-127, 100, 100));
    expect_event(
        &mut bob,
        Duration::from_secs(3),
        "ada stopping",
        |e| matches!(e, CallEvent::Speaking { identity, speaking: false, .. } if identity == "ada"),
    )
    .await;
    quiet.await.unwrap();
    ada.leave().await;
    bob.leave().await;
}

/// Sends video frames until stopped, whatever the connection's state.
fn keep_sending_video(track: confab_client::media::LocalTrack) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = std::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(33));
        for seq in 0.. {
            tick.tick().await;
            let stamp = confab_client::media::synthetic::FrameStamp {
                seq,
                sent_at_micros: confab_client::media::synthetic::now_micros(),
            };
            let keyframe = seq % 10 == 0;
            let frame = confab_client::media::EncodedFrame {
                data: confab_client::media::synthetic::video_frame(
                    confab_client::media::VideoCodec::H264,
                    stamp,
                    keyframe,
                    2_000,
                )
                .into(),
                timestamp: start.elapsed(),
                rid: None,
                audio_level: None,
            };
            if let Err(confab_client::media::SendFrameError::Ended) = track.send_frame(frame) {
                return;
            }
        }
    })
}

/// Waits until `session` receives `count` whole video frames from `from`.
async fn frames_from(
    session: &mut confab_client::media::CallSession,
    from: &str,
    count: usize,
    limit: Duration,
) {
    let mut seen = 0;
    expect_event(
        session,
        limit,
        &format!("{count} frames from {from}"),
        |e| {
            if let CallEvent::Frame(f) = e {
                if f.identity == from
                    && confab_client::media::synthetic::read_frame(&f.data).is_some()
                {
                    seen += 1;
                }
            }
            seen >= count
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_sfu_restarts_everyone_is_back_with_media() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let sfu = start_sfu().await;
    let port: u16 = sfu
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut ada = join(&sfu, "default:restart", "ada").await;
    let mut bob = join(&sfu, "default:restart", "bob").await;
    let ada_video = ada
        .publish(confab_client::media::TrackSpec::camera(
            confab_client::media::VideoCodec::H264,
            320,
            180,
        ))
        .await
        .unwrap();
    let bob_video = bob
        .publish(confab_client::media::TrackSpec::camera(
            confab_client::media::VideoCodec::H264,
            320,
            180,
        ))
        .await
        .unwrap();
    let a = keep_sending_video(ada_video);
    let b = keep_sending_video(bob_video);
    frames_from(&mut ada, "bob", 10, Duration::from_secs(5)).await;
    frames_from(&mut bob, "ada", 10, Duration::from_secs(5)).await;

    sfu.stop().await;
    let sfu = start_sfu_at(port).await;
    for (session, other) in [(&mut ada, "bob"), (&mut bob, "ada")] {
        expect_event(session, Duration::from_secs(10), "reconnected", |e| {
            matches!(e, CallEvent::Reconnected)
        })
        .await;
        frames_from(session, other, 10, Duration::from_secs(10)).await;
    }
    let mut present = sfu.sfu.participants("default:restart").await;
    present.sort();
    assert_eq!(present, vec!["ada".to_owned(), "bob".to_owned()]);
    assert!(ada.stats().await.rejoins >= 1);
    a.abort();
    b.abort();
    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_blip_restarts_ice_without_leaving_the_call() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let sfu = start_sfu().await;
    let mut ada = join(&sfu, "default:blip", "ada").await;
    let mut bob = join(&sfu, "default:blip", "bob").await;
    let bob_video = bob
        .publish(confab_client::media::TrackSpec::camera(
            confab_client::media::VideoCodec::H264,
            320,
            180,
        ))
        .await
        .unwrap();
    let sending = keep_sending_video(bob_video);
    frames_from(&mut ada, "bob", 10, Duration::from_secs(5)).await;
    ada.simulate_network_blip(Duration::from_secs(3)).await;
    expect_event(&mut ada, Duration::from_secs(5), "an ICE restart", |e| {
        matches!(e, CallEvent::Reconnecting { attempt: 0, .. })
    })
    .await;
    expect_event(&mut ada, Duration::from_secs(10), "reconnected", |e| {
        matches!(e, CallEvent::Reconnected)
    })
    .await;
    frames_from(&mut ada, "bob", 10, Duration::from_secs(5)).await;
    // Same session: no rejoin, and bob never saw ada leave.
    assert_eq!(ada.stats().await.rejoins, 0);
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(200), bob.next_event()).await
    {
        assert!(
            !matches!(event, CallEvent::ParticipantLeft { .. }),
            "bob saw ada leave: {event:?}"
        );
    }
    sending.abort();
    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_subscriber_gets_the_simulcast_layer_its_tile_needs() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    use confab_client::media::{EncodedFrame, TrackSpec, VideoCodec};
    let sfu = start_sfu().await;
    let ada = join(&sfu, "default:layers", "ada").await;
    let mut bob = join(&sfu, "default:layers", "bob").await;
    let video = ada
        .publish(TrackSpec::camera(VideoCodec::H264, 1280, 720).with_simulcast())
        .await
        .unwrap();
    // Each layer's frames have their own size, so the receiver can tell them apart.
    let layer_size = |rid: &str| match rid {
        "q" => 1_000,
        "h" => 3_000,
        _ => 9_000,
    };
    let sender = {
        let video = video.clone();
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            for seq in 0..600u64 {
                tick.tick().await;
                for rid in ["q", "h", "f"] {
                    let stamp = confab_client::media::synthetic::FrameStamp {
                        seq,
                        sent_at_micros: 0,
                    };
                    let _ = video.send_frame(EncodedFrame {
                        data: confab_client::media::synthetic::video_frame(
                            VideoCodec::H264,
                            stamp,
                            seq % 15 == 0,
                            layer_size(rid),
                        )
                        .into(),
                        timestamp: start.elapsed(),
                        rid: Some(rid.into()),
                        audio_level: None,
                    });
                }
            }
        })
    };
    // No size asked: the full layer.
    let sid = wait_for_layer(&mut bob, "f").await;
    bob.set_video_size(&sid, 320, 180).await;
    wait_for_layer(&mut bob, "q").await;
    bob.set_video_size(&sid, 640, 360).await;
    wait_for_layer(&mut bob, "h").await;
    bob.set_video_size(&sid, 1280, 720).await;
    wait_for_layer(&mut bob, "f").await;
    sender.abort();
    ada.leave().await;
    bob.leave().await;
}

/// Waits for 10 frames in a row of one layer (told apart by size); returns the track sid.
async fn wait_for_layer(bob: &mut confab_client::media::CallSession, want: &str) -> String {
    let size_class = |len: usize| {
        if len < 2_000 {
            "q"
        } else if len < 6_000 {
            "h"
        } else {
            "f"
        }
    };
    let mut in_a_row = 0;
    let mut track_sid = String::new();
    expect_event(bob, Duration::from_secs(5), &format!("layer {want}"), |e| {
        if let CallEvent::Frame(f) = e {
            track_sid = f.track_sid.clone();
            if size_class(f.data.len()) == want {
                in_a_row += 1;
            } else {
                in_a_row = 0;
            }
        }
        in_a_row >= 10
    })
    .await;
    track_sid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_packets_are_recovered_and_video_still_arrives_whole_and_in_order() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let sfu = start_sfu().await;
    let mut ada = join(&sfu, "default:loss", "ada").await;
    let bob = join(&sfu, "default:loss", "bob").await;
    let (video, audio) = publish_av(&bob).await;
    // Wait until media flows before losing packets, so only retransmission can fill gaps.
    // Frames past the 150 checked ones let a lost tail of frame 149 be noticed and resent.
    let sending = tokio::spawn(send_av(video, audio, 190));
    let mut received = Received::default();
    collect(&mut ada, &mut received, Duration::from_secs(5), |r, _| {
        r.seqs
            .get(&("bob".to_owned(), MediaKind::Video))
            .is_some_and(|s| s.len() >= 5)
    })
    .await;
    ada.simulate_receive_loss(0.05).await;
    collect(&mut ada, &mut received, Duration::from_secs(20), |r, _| {
        r.seqs
            .get(&("bob".to_owned(), MediaKind::Video))
            .is_some_and(|s| s.last().is_some_and(|l| *l >= 160))
    })
    .await;
    sending.await.unwrap();
    received.assert_complete_through("bob", MediaKind::Video, 149, "ada");
    let stats = ada.stats().await;
    let video_in = stats.tracks.iter().find(|t| !t.outgoing && t.nacks > 0);
    assert!(
        video_in.is_some(),
        "NACKs were sent for the lost packets: {stats:?}"
    );
    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_subscriptions_start_and_stop_a_track() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    use confab_client::media::{CallSessionOptions, SfuCredentials};
    let sfu = start_sfu().await;
    let mut ada = confab_client::media::CallSession::connect(
        SfuCredentials {
            url: sfu.url.clone(),
            token: token("default:explicit", "ada", true),
        },
        CallSessionOptions::default().with_auto_subscribe(false),
    )
    .await
    .unwrap();
    let bob = join(&sfu, "default:explicit", "bob").await;
    let video = bob
        .publish(confab_client::media::TrackSpec::camera(
            confab_client::media::VideoCodec::H264,
            320,
            180,
        ))
        .await
        .unwrap();
    let sending = keep_sending_video(video);
    let published = expect_event(
        &mut ada,
        Duration::from_secs(5),
        "bob's camera announced",
        |e| matches!(e, CallEvent::TrackPublished { identity, .. } if identity == "bob"),
    )
    .await;
    let CallEvent::TrackPublished { track, .. } = published else {
        unreachable!()
    };
    // Not subscribed: no frames.
    let quiet = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            if let Some(CallEvent::Frame(_)) = ada.next_event().await {
                return;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "frames arrived without a subscription");
    ada.set_subscribed(&track.sid, true).await;
    frames_from(&mut ada, "bob", 10, Duration::from_secs(5)).await;
    ada.set_subscribed(&track.sid, false).await;
    // Frames in flight may still land; then nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(10), ada.next_event()).await
    {
    }
    let after = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            if let Some(CallEvent::Frame(_)) = ada.next_event().await {
                return;
            }
        }
    })
    .await;
    assert!(after.is_err(), "frames kept arriving after unsubscribing");
    sending.abort();
    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_and_per_track_stats_are_reported() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let sfu = start_sfu().await;
    let mut ada = join(&sfu, "default:stats", "ada").await;
    let bob = join(&sfu, "default:stats", "bob").await;
    let (video, audio) = publish_av(&bob).await;
    let sending = tokio::spawn(send_av(video, audio, 120));
    let event = expect_event(
        &mut ada,
        Duration::from_secs(6),
        "bob's connection quality",
        |e| matches!(e, CallEvent::Quality { identity, .. } if identity == "bob"),
    )
    .await;
    // Loopback: nothing lost, tiny round trips.
    assert!(
        matches!(
            event,
            CallEvent::Quality {
                quality: confab_client::media::ConnectionQuality::Excellent,
                ..
            }
        ),
        "{event:?}"
    );
    sending.await.unwrap();
    let sent = bob.stats().await;
    let video_out = sent
        .tracks
        .iter()
        .find(|t| t.outgoing && t.bytes > 100_000)
        .unwrap_or_else(|| panic!("bob's video stats: {sent:?}"));
    assert!(video_out.bitrate_bps > 0, "{video_out:?}");
    assert!(sent.frames_sent >= 240, "{sent:?}");
    let got = ada.stats().await;
    assert!(
        got.tracks.iter().any(|t| !t.outgoing && t.packets > 100),
        "{got:?}"
    );
    assert!(got.rtt.is_some(), "a round trip was measured: {got:?}");
    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinators_join_credentials_lead_into_the_same_media_session() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    use confab_client::{ClientOptions, ConnectionState, TokenSource, User, VideoClient};
    let coordinator = confab_coordinator::start(Default::default()).await.unwrap();
    let client_for = |id: &str| {
        VideoClient::with_user(
            coordinator.api_key().to_owned(),
            User::new(id),
            TokenSource::token(coordinator.mint_token(id, None)),
            ClientOptions::default().with_base_url(coordinator.base_url().to_owned()),
        )
    };
    let ada_client = client_for("ada");
    let bob_client = client_for("bob");
    for c in [&ada_client, &bob_client] {
        c.state()
            .wait_for(|s| matches!(s, ConnectionState::Connected { .. }))
            .await
            .unwrap();
    }
    let (answer, mut ada) = ada_client
        .call("default", "media-e2e")
        .join_with_media(true, Default::default())
        .await
        .expect("ada joins with media");
    assert!(answer.credentials.is_some());
    let (_, bob) = bob_client
        .call("default", "media-e2e")
        .join_with_media(false, Default::default())
        .await
        .expect("bob joins with media");
    let (video, audio) = publish_av(&bob).await;
    let sending = tokio::spawn(send_av(video, audio, 60));
    let mut received = Received::default();
    collect(&mut ada, &mut received, Duration::from_secs(10), |r, _| {
        r.seqs.values().filter(|s| s.last() == Some(&59)).count() == 2
    })
    .await;
    sending.await.unwrap();
    received.assert_complete("bob", MediaKind::Video, 59, "ada");
    let mut in_sfu = coordinator
        .sfu()
        .expect("an embedded SFU")
        .participants("default:media-e2e")
        .await;
    in_sfu.sort();
    assert_eq!(in_sfu, vec!["ada".to_owned(), "bob".to_owned()]);
    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sfu_bound_to_every_address_carries_media_to_its_announced_loopback_address() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let mut config = confab_sfu::SfuConfig::loopback(KEY, confab_sfu::ApiSecret::new(SECRET));
    config.udp_bind = "0.0.0.0:0".parse().unwrap();
    config.announce = vec!["127.0.0.1".parse().unwrap()];
    let sfu = start_sfu_config(0, config).await;
    let mut ada = join(&sfu, "default:any", "ada").await;
    let bob = join(&sfu, "default:any", "bob").await;
    let (video, audio) = publish_av(&bob).await;
    let sending = tokio::spawn(send_av(video, audio, 60));
    let mut received = Received::default();
    collect(&mut ada, &mut received, Duration::from_secs(10), |r, _| {
        r.seqs.values().filter(|s| s.last() == Some(&59)).count() == 2
    })
    .await;
    sending.await.unwrap();
    received.assert_complete("bob", MediaKind::Video, 59, "ada");
    received.assert_complete("bob", MediaKind::Audio, 59, "ada");
    ada.leave().await;
    bob.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscriber_gets_a_keyframe_at_once_because_the_publisher_is_asked_for_one() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    use confab_client::media::{EncodedFrame, TrackSpec, VideoCodec};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let sfu = start_sfu().await;
    let mut ada = join(&sfu, "default:kf", "ada").await;
    let video = ada
        .publish(TrackSpec::camera(VideoCodec::H264, 320, 180))
        .await
        .unwrap();
    // Keyframes only when asked (and the first): no periodic ones to hide a missing request.
    let wanted = Arc::new(AtomicBool::new(true));
    let sender = {
        let wanted = wanted.clone();
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            for seq in 0..300u64 {
                tick.tick().await;
                let keyframe = wanted.swap(false, Ordering::Relaxed);
                let stamp = confab_client::media::synthetic::FrameStamp {
                    seq,
                    sent_at_micros: 0,
                };
                let _ = video.send_frame(EncodedFrame {
                    data: confab_client::media::synthetic::video_frame(
                        VideoCodec::H264,
                        stamp,
                        keyframe,
                        2_000,
                    )
                    .into(),
                    timestamp: start.elapsed(),
                    rid: None,
                    audio_level: None,
                });
            }
        })
    };
    let requests = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let answering = {
        let requests = requests.clone();
        tokio::spawn(async move {
            while let Some(event) = ada.next_event().await {
                if let CallEvent::KeyframeRequested { .. } = event {
                    requests.fetch_add(1, Ordering::Relaxed);
                    wanted.store(true, Ordering::Relaxed);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let joined_at = std::time::Instant::now();
    let mut bob = join(&sfu, "default:kf", "bob").await;
    let first = expect_event(
        &mut bob,
        Duration::from_secs(3),
        "ada's first frame",
        |e| matches!(e, CallEvent::Frame(f) if f.identity == "ada"),
    )
    .await;
    let waited = joined_at.elapsed();
    let CallEvent::Frame(first) = first else {
        unreachable!()
    };
    assert!(
        first.keyframe,
        "the first frame a new subscriber gets is a keyframe"
    );
    assert!(
        requests.load(Ordering::Relaxed) >= 1,
        "the publisher was asked for a keyframe"
    );
    // Frames flow only once a request is answered (no periodic keyframes), so arriving at
    // all proves the request; the bound says it is prompt.
    assert!(
        waited < Duration::from_secs(2),
        "first frame after {waited:?}"
    );
    sender.abort();
    answering.abort();
    bob.leave().await;
}

/// Found end to end: after two participants came and went, the one who was in the call first
/// must still receive whoever joins next (the leavers' receive sections are reused or new ones
/// are asked for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_after_two_leavers_reaches_everyone_who_stayed() {
    let _turn = ONE_CALL_AT_A_TIME.lock().await;
    let sfu = start_sfu().await;
    let room = "default:leavers";
    let mut ada = join(&sfu, room, "ada").await;
    let mut bob = join(&sfu, room, "bob").await;
    let (ada_video, ada_audio) = publish_av(&ada).await;
    let (bob_video, bob_audio) = publish_av(&bob).await;
    let steady = tokio::spawn(async move {
        tokio::join!(
            send_av(ada_video, ada_audio, 600),
            send_av(bob_video, bob_audio, 600)
        );
    });
    let mut at_ada = Received::default();
    let mut at_bob = Received::default();
    let mut leavers = Vec::new();
    for name in ["p1", "p2"] {
        let session = join(&sfu, room, name).await;
        let (video, audio) = publish_av(&session).await;
        leavers.push((session, tokio::spawn(send_av(video, audio, 600))));
    }
    let from_both = |r: &Received, _: &CallEvent| {
        ["p1", "p2"].iter().all(|p| {
            r.seqs
                .get(&(p.to_string(), MediaKind::Video))
                .is_some_and(|s| s.len() > 10)
        })
    };
    tokio::join!(
        collect(&mut ada, &mut at_ada, Duration::from_secs(15), from_both),
        collect(&mut bob, &mut at_bob, Duration::from_secs(15), from_both),
    );
    assert!(
        from_both(&at_ada, &CallEvent::Reconnected),
        "ada got p1 and p2"
    );
    for (session, sending) in leavers {
        sending.abort();
        session.leave().await;
    }
    // Both notice them gone.
    let gone = |_: &Received, e: &CallEvent| matches!(e, CallEvent::ParticipantLeft { identity, .. } if identity == "p2");
    tokio::join!(
        collect(&mut ada, &mut at_ada, Duration::from_secs(10), gone),
        collect(&mut bob, &mut at_bob, Duration::from_secs(10), gone),
    );
    let newcomer = join(&sfu, room, "p3").await;
    let (video, audio) = publish_av(&newcomer).await;
    let sending = tokio::spawn(send_av(video, audio, 300));
    let from_p3 = |r: &Received, _: &CallEvent| {
        [MediaKind::Video, MediaKind::Audio].iter().all(|k| {
            r.seqs
                .get(&("p3".to_owned(), *k))
                .is_some_and(|s| s.len() > 10)
        })
    };
    tokio::join!(
        collect(&mut ada, &mut at_ada, Duration::from_secs(15), from_p3),
        collect(&mut bob, &mut at_bob, Duration::from_secs(15), from_p3),
    );
    assert!(from_p3(&at_bob, &CallEvent::Reconnected), "bob receives p3");
    assert!(from_p3(&at_ada, &CallEvent::Reconnected), "ada receives p3");
    sending.abort();
    steady.abort();
    newcomer.leave().await;
    ada.leave().await;
    bob.leave().await;
    sfu.server.abort();
}
