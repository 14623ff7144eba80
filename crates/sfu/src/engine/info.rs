//! The LiveKit messages the engine builds from its own state.

use livekit_protocol as lk;

use crate::token::VideoGrant;

pub(crate) fn permission(grant: &VideoGrant) -> lk::ParticipantPermission {
    lk::ParticipantPermission {
        can_subscribe: grant.can_subscribe(),
        can_publish: grant.can_publish(),
        can_publish_data: grant.can_publish_data(),
        can_publish_sources: grant
            .can_publish_sources
            .iter()
            .filter_map(|s| source_from_name(s))
            .map(|s| s as i32)
            .collect(),
        hidden: grant.hidden,
        ..Default::default()
    }
}

pub(crate) fn source_from_name(name: &str) -> Option<lk::TrackSource> {
    Some(match name {
        "camera" => lk::TrackSource::Camera,
        "microphone" => lk::TrackSource::Microphone,
        "screen_share" => lk::TrackSource::ScreenShare,
        "screen_share_audio" => lk::TrackSource::ScreenShareAudio,
        _ => return None,
    })
}

pub(crate) fn source_name(source: i32) -> &'static str {
    match lk::TrackSource::try_from(source).unwrap_or(lk::TrackSource::Unknown) {
        lk::TrackSource::Camera => "camera",
        lk::TrackSource::Microphone => "microphone",
        lk::TrackSource::ScreenShare => "screen_share",
        lk::TrackSource::ScreenShareAudio => "screen_share_audio",
        lk::TrackSource::Unknown => "unknown",
    }
}

/// `video/VP8` from a publisher's short codec name (`vp8`, `h264`), as LiveKit clients
/// expect it in `TrackInfo.codecs[].mime_type`.
pub(crate) fn video_mime(short: &str) -> String {
    let upper = match short.to_ascii_lowercase().as_str() {
        "h264" => "H264".to_owned(),
        "vp8" | "" => "VP8".to_owned(),
        "vp9" => "VP9".to_owned(),
        "av1" => "AV1".to_owned(),
        other => other.to_ascii_uppercase(),
    };
    format!("video/{upper}")
}

pub(crate) fn server_info() -> lk::ServerInfo {
    lk::ServerInfo {
        edition: lk::server_info::Edition::Standard as i32,
        version: crate::SERVER_VERSION.to_owned(),
        protocol: 17,
        region: "local".to_owned(),
        node_id: "confab".to_owned(),
        ..Default::default()
    }
}

pub(crate) fn response(message: lk::signal_response::Message) -> lk::SignalResponse {
    lk::SignalResponse {
        message: Some(message),
    }
}
