//! The SFU's room tap (what the coordinator packages as HLS): it carries the publisher's best
//! simulcast layer from a keyframe on, whole and in order, and its microphone; it asks for a
//! keyframe when it needs one; viewers are counted apart from publishers.

mod common;

use std::time::Duration;

use common::*;
use confab_client::media::synthetic::{self, FrameStamp};
use confab_client::media::{EncodedFrame, TrackSpec, VideoCodec};
use confab_sfu::{TapCodec, TapKind};

/// Each layer's frames have their own size, so the tap's layer can be told.
fn layer_size(rid: &str) -> usize {
    match rid {
        "q" => 1_000,
        "h" => 3_000,
        _ => 9_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_carries_the_full_layer_from_a_keyframe_whole_and_in_order_with_the_microphone() {
    let sfu = start_sfu().await;
    let room = "livestream:tapped";
    let host = join(&sfu, room, "host").await;
    let mut tap = sfu.sfu.tap(room).await;
    let video = host
        .publish(TrackSpec::camera(VideoCodec::H264, 1280, 720).with_simulcast())
        .await
        .unwrap();
    let audio = host.publish(TrackSpec::microphone()).await.unwrap();
    const FRAMES: u64 = 150;
    let sender = tokio::spawn(async move {
        let start = std::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(33));
        // Keyframes only every 60 frames: the tap must not wait that long at the start, as
        // it asks for one.
        for seq in 0..FRAMES {
            tick.tick().await;
            let stamp = FrameStamp {
                seq,
                sent_at_micros: synthetic::now_micros(),
            };
            for rid in ["q", "h", "f"] {
                let _ = video.send_frame(EncodedFrame {
                    data: synthetic::video_frame(
                        VideoCodec::H264,
                        stamp,
                        seq % 60 == 0,
                        layer_size(rid),
                    )
                    .into(),
                    timestamp: start.elapsed(),
                    rid: Some(rid.into()),
                    audio_level: None,
                });
            }
            let _ = audio.send_frame(EncodedFrame {
                data: synthetic::audio_frame(stamp, 120).into(),
                timestamp: start.elapsed(),
                rid: None,
                audio_level: Some(-30),
            });
        }
    });
    let mut video_seqs = Vec::new();
    let mut audio_seqs = Vec::new();
    let mut first_video_keyframe = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while video_seqs.last() != Some(&(FRAMES - 1)) {
        let frame = tokio::time::timeout_at(deadline, tap.next())
            .await
            .expect("the tap carries frames until the last one")
            .expect("the tap lasts");
        let stamp = synthetic::read_frame(&frame.data).expect("a whole synthetic frame");
        match frame.kind {
            TapKind::Video => {
                assert_eq!(frame.codec, TapCodec::H264);
                assert_eq!(frame.clock_rate, 90_000);
                assert!(
                    frame.data.len() >= layer_size("f"),
                    "only the full layer is tapped (frame {} is {} bytes)",
                    stamp.seq,
                    frame.data.len()
                );
                first_video_keyframe.get_or_insert(frame.keyframe);
                video_seqs.push(stamp.seq);
            }
            TapKind::Audio => {
                assert_eq!(frame.codec, TapCodec::Opus);
                assert_eq!(frame.clock_rate, 48_000);
                audio_seqs.push(stamp.seq);
            }
        }
    }
    sender.await.unwrap();
    assert_eq!(
        first_video_keyframe,
        Some(true),
        "video starts at a keyframe"
    );
    let first = video_seqs[0];
    assert!(
        (first..FRAMES).eq(video_seqs.iter().copied()),
        "video from frame {first} whole and in order: {video_seqs:?}"
    );
    // The stream's own keyframes come every 60 frames; the tap asked for an earlier one
    // (the sender's frames are keyframes by content only at multiples of 60, but a PLI makes
    // the SFU wait for the next keyframe of the layer, so the first one tapped is frame 0 or 60).
    assert!(first == 0 || first == 60, "first tapped frame {first}");
    assert!(
        audio_seqs.windows(2).all(|w| w[0] < w[1]) && audio_seqs.len() as u64 >= FRAMES - 20,
        "the microphone in order: {audio_seqs:?}"
    );
    sfu.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_screen_takes_the_tapped_picture_over_and_the_camera_comes_back_after_it() {
    use confab_client::media::TrackSource;
    let sfu = start_sfu().await;
    let room = "livestream:sharing";
    let host = join(&sfu, room, "host").await;
    let mut tap = sfu.sfu.tap(room).await;
    let camera = host
        .publish(TrackSpec::camera(VideoCodec::H264, 640, 360))
        .await
        .unwrap();
    let mut spec = TrackSpec::camera(VideoCodec::H264, 1280, 720);
    spec.name = "screen".into();
    spec.source = TrackSource::ScreenShare;
    // Frames of the camera are 2,000 bytes, of the screen 7,000; keyframes every 15 frames.
    let send = |track: confab_client::media::LocalTrack, size: usize, frames: u64| {
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            for seq in 0..frames {
                tick.tick().await;
                let stamp = FrameStamp {
                    seq,
                    sent_at_micros: synthetic::now_micros(),
                };
                let _ = track.send_frame(EncodedFrame {
                    data: synthetic::video_frame(VideoCodec::H264, stamp, seq % 15 == 0, size)
                        .into(),
                    timestamp: start.elapsed(),
                    rid: None,
                    audio_level: None,
                });
            }
            track
        })
    };
    let camera_sending = send(camera, 2_000, 300);
    // Reads tapped video until `want` frames of `size` bytes came in a row; returns the track.
    async fn tapped(tap: &mut confab_sfu::RoomTap, size: usize, want: usize) -> (String, bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut run = 0;
        let mut first_keyframe = None;
        loop {
            let frame = tokio::time::timeout_at(deadline, tap.next())
                .await
                .unwrap_or_else(|_| panic!("no run of {want} tapped frames of {size} bytes"))
                .expect("the tap lasts");
            if frame.kind != TapKind::Video {
                continue;
            }
            if frame.data.len() >= size && frame.data.len() < size + 1_000 {
                first_keyframe.get_or_insert(frame.keyframe);
                run += 1;
                if run == want {
                    return (frame.track_sid, first_keyframe == Some(true));
                }
            } else {
                run = 0;
                first_keyframe = None;
            }
        }
    }
    let (first, _) = tapped(&mut tap, 2_000, 10).await;
    let screen = host.publish(spec).await.unwrap();
    let screen_sid = screen.sid().to_owned();
    let screen_sending = send(screen, 7_000, 90);
    let (shared, from_keyframe) = tapped(&mut tap, 7_000, 20).await;
    assert_eq!(shared, screen_sid, "the shared screen is tapped");
    assert!(from_keyframe, "the screen is tapped from a keyframe");
    // (A run of 20 in a row: no camera frame came between them.)
    let screen = screen_sending.await.unwrap();
    screen.unpublish().await;
    let (back, from_keyframe) = tapped(&mut tap, 2_000, 10).await;
    assert_eq!(
        back, first,
        "the camera is tapped again once the screen is gone"
    );
    assert!(from_keyframe, "the camera comes back from a keyframe");
    camera_sending.abort();
    sfu.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_are_counted_apart_from_publishers() {
    let sfu = start_sfu().await;
    let room = "livestream:counted";
    let host = join(&sfu, room, "host").await;
    let mut viewers = Vec::new();
    for name in ["v1", "v2"] {
        let viewer = confab_client::media::CallSession::connect(
            confab_client::media::SfuCredentials {
                url: sfu.url.clone(),
                token: token(room, name, false),
            },
            Default::default(),
        )
        .await
        .expect("a viewer joins");
        viewers.push(viewer);
    }
    let audience = sfu.sfu.audience(room).await;
    assert_eq!(audience.publishers, 1);
    assert_eq!(audience.viewers(), 2);
    for v in viewers {
        v.leave().await;
    }
    host.leave().await;
    sfu.server.abort();
}
