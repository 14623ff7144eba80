//! A participant killed with SIGKILL disappears for the others within 10 s.
//!
//! This binary is both the test and the participant it kills: started with
//! `CONFAB_CHILD_SFU_URL` set, it joins the call, publishes video and runs until killed.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use confab_client::media::{
    CallEvent, CallSession, CallSessionOptions, SfuCredentials, TrackSpec, VideoCodec,
};
use tokio::io::{AsyncBufReadExt, BufReader};

const NAME: &str = "a_participant_killed_with_sigkill_disappears_for_the_others";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if let Ok(url) = std::env::var("CONFAB_CHILD_SFU_URL") {
        let token = std::env::var("CONFAB_CHILD_TOKEN").unwrap_or_default();
        runtime.block_on(child(url, token));
        return;
    }
    // Honour what `cargo test` passes: `--list`, and a name filter that leaves this test out.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        println!("running 0 tests");
        return;
    }
    println!("running 1 test");
    runtime.block_on(killed_participant_disappears());
    println!("test {NAME} ... ok");
}

async fn child(url: String, token: String) {
    let session =
        CallSession::connect(SfuCredentials { url, token }, CallSessionOptions::default())
            .await
            .expect("the child joins");
    let video = session
        .publish(TrackSpec::camera(VideoCodec::H264, 320, 180))
        .await
        .expect("the child publishes");
    println!("published");
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    // Bounded: the parent kills the child long before this ends.
    for seq in 0..(30 * 120) {
        tick.tick().await;
        let stamp = confab_client::media::synthetic::FrameStamp {
            seq,
            sent_at_micros: 0,
        };
        let _ = video.send_frame(confab_client::media::EncodedFrame {
            data: confab_client::media::synthetic::video_frame(
                VideoCodec::H264,
                stamp,
                seq % 10 == 0,
                1500,
            )
            .into(),
            timestamp: start.elapsed(),
            rid: None,
            audio_level: None,
        });
    }
}

async fn killed_participant_disappears() {
    let sfu = start_sfu().await;
    let mut ada = join(&sfu, "default:kill", "ada").await;
    let mut child =
        tokio::process::Command::new(std::env::current_exe().expect("this test's path"))
            .env("CONFAB_CHILD_SFU_URL", &sfu.url)
            .env("CONFAB_CHILD_TOKEN", token("default:kill", "carl", true))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the child starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    assert!(
        matches!(ready, Ok(Ok(Some(ref l))) if l == "published"),
        "the child did not publish: {ready:?}"
    );

    // The child's frames reach ada, so its transport is up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ada.next_event()).await {
            Ok(Some(CallEvent::Frame(f))) if f.identity == "carl" => break,
            Ok(Some(_)) => continue,
            other => panic!("no frame from the child: {other:?}"),
        }
    }
    child.start_kill().expect("SIGKILL");
    let killed_at = Instant::now();
    let _ = child.wait().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ada.next_event()).await {
            Ok(Some(CallEvent::ParticipantLeft { identity, .. })) if identity == "carl" => break,
            Ok(Some(_)) => continue,
            other => panic!("the killed participant was not removed within 10 s: {other:?}"),
        }
    }
    println!(
        "removed {:.1} s after SIGKILL",
        killed_at.elapsed().as_secs_f32()
    );
    assert_eq!(
        sfu.sfu.participants("default:kill").await,
        vec!["ada".to_owned()]
    );
    ada.leave().await;
}
