//! The committed seeds of the `signal_messages` target, and how they are made: signal frames
//! like livekit-client sends (ping, offer, trickle, add track, subscription, track settings,
//! mute, leave) and join requests (plain and gzipped, as the URL's base64url text, and the
//! raw wrapped bytes, which the target base64-encodes itself).
//!
//! `cargo test` here checks the committed files match and decode; after changing the set,
//! `CONFAB_WRITE_SEEDS=1 cargo test` rewrites them.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use confab_sfu::signal::{decode_join_request, decode_signal_request};
use livekit_protocol as lk;
use lk::signal_request::Message as Req;
use prost::Message as _;

/// Small but complete: one audio and one video section, receive only.
const OFFER_SDP: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\na=ice-ufrag:fuzz\r\na=ice-pwd:fuzzfuzzfuzzfuzzfuzzfuzz\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n";

fn frame(message: Req) -> Vec<u8> {
    lk::SignalRequest {
        message: Some(message),
    }
    .encode_to_vec()
}

fn offer() -> lk::SessionDescription {
    lk::SessionDescription {
        r#type: "offer".into(),
        sdp: OFFER_SDP.into(),
        id: 2,
        mid_to_track_id: HashMap::new(),
    }
}

fn wrapped_join(gzip: bool) -> Vec<u8> {
    let join = lk::JoinRequest {
        client_info: Some(lk::ClientInfo {
            sdk: lk::client_info::Sdk::Js as i32,
            version: "2.23.0".into(),
            protocol: 16,
            browser: "Chrome".into(),
            ..Default::default()
        }),
        connection_settings: Some(lk::ConnectionSettings {
            auto_subscribe: true,
            adaptive_stream: true,
            ..Default::default()
        }),
        publisher_offer: Some(offer()),
        ..Default::default()
    }
    .encode_to_vec();
    let (compression, body) = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&join).unwrap();
        (
            lk::wrapped_join_request::Compression::Gzip,
            enc.finish().unwrap(),
        )
    } else {
        (lk::wrapped_join_request::Compression::None, join)
    };
    lk::WrappedJoinRequest {
        compression: compression as i32,
        join_request: body,
    }
    .encode_to_vec()
}

/// (file name, bytes, what it is for the decoders).
enum Seed {
    Frame(Vec<u8>),
    JoinText(String),
    JoinRaw(Vec<u8>),
}

fn seeds() -> Vec<(&'static str, Seed)> {
    use Seed::*;
    vec![
        ("ping", Frame(frame(Req::Ping(1_764_561_600_000)))),
        (
            "ping_req",
            Frame(frame(Req::PingReq(lk::Ping {
                timestamp: 1_764_561_600_000,
                rtt: 12,
            }))),
        ),
        ("offer", Frame(frame(Req::Offer(offer())))),
        (
            "trickle",
            Frame(frame(Req::Trickle(lk::TrickleRequest {
                candidate_init: r#"{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0}"#.into(),
                target: 0,
                r#final: false,
            }))),
        ),
        (
            "add_track",
            Frame(frame(Req::AddTrack(lk::AddTrackRequest {
                cid: "TC_camera".into(),
                name: "camera".into(),
                r#type: lk::TrackType::Video as i32,
                width: 640,
                height: 360,
                source: lk::TrackSource::Camera as i32,
                layers: vec![lk::VideoLayer {
                    quality: lk::VideoQuality::High as i32,
                    width: 640,
                    height: 360,
                    bitrate: 600_000,
                    rid: "f".into(),
                    ..Default::default()
                }],
                simulcast_codecs: vec![lk::SimulcastCodec {
                    codec: "vp8".into(),
                    cid: "TC_camera".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }))),
        ),
        (
            "subscription",
            Frame(frame(Req::Subscription(lk::UpdateSubscription {
                track_sids: vec!["TR_camera".into()],
                subscribe: true,
                participant_tracks: vec![lk::ParticipantTracks {
                    participant_sid: "PA_ada".into(),
                    track_sids: vec!["TR_camera".into()],
                }],
            }))),
        ),
        (
            "track_setting",
            Frame(frame(Req::TrackSetting(lk::UpdateTrackSettings {
                track_sids: vec!["TR_camera".into()],
                width: 320,
                height: 180,
                ..Default::default()
            }))),
        ),
        (
            "mute",
            Frame(frame(Req::Mute(lk::MuteTrackRequest {
                sid: "TR_mic".into(),
                muted: true,
            }))),
        ),
        (
            "leave",
            Frame(frame(Req::Leave(lk::LeaveRequest {
                reason: lk::DisconnectReason::ClientInitiated as i32,
                ..Default::default()
            }))),
        ),
        ("join_request", JoinText(URL_SAFE_NO_PAD.encode(wrapped_join(false)))),
        ("join_request_gzip", JoinText(URL_SAFE_NO_PAD.encode(wrapped_join(true)))),
        ("join_request_raw", JoinRaw(wrapped_join(false))),
    ]
}

#[test]
fn the_committed_seeds_decode_and_match_their_generator() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds/signal_messages");
    let write = std::env::var_os("CONFAB_WRITE_SEEDS").is_some();
    for (name, seed) in seeds() {
        let bytes = match &seed {
            Seed::Frame(b) | Seed::JoinRaw(b) => b.clone(),
            Seed::JoinText(t) => t.clone().into_bytes(),
        };
        // Each one is valid, so fuzzing starts from inputs that reach past the decoders.
        match &seed {
            Seed::Frame(b) => {
                let request = decode_signal_request(b, 64 * 1024).unwrap();
                assert!(request.message.is_some(), "{name}");
            }
            Seed::JoinText(t) => {
                let join = decode_join_request(t, 64 * 1024).unwrap();
                assert!(join.publisher_offer.is_some(), "{name}");
            }
            Seed::JoinRaw(b) => {
                let join = decode_join_request(&URL_SAFE_NO_PAD.encode(b), 64 * 1024).unwrap();
                assert!(join.connection_settings.is_some(), "{name}");
            }
        }
        assert!(
            bytes.len() < 1024,
            "{name} is {} bytes: keep seeds small",
            bytes.len()
        );
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (CONFAB_WRITE_SEEDS=1 cargo test writes it)",
                    path.display()
                )
            });
            // Gzip output can differ between flate2 versions; that seed only has to decode.
            if name != "join_request_gzip" {
                assert_eq!(committed, bytes, "{name} differs from its generator");
            } else {
                let text = String::from_utf8(committed).unwrap();
                decode_join_request(&text, 64 * 1024).unwrap();
            }
        }
    }
}
