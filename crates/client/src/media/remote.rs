//! The other participants as the SFU describes them, and the events their updates mean.

use std::collections::HashMap;

use livekit_protocol as lk;

use super::{CallEvent, ConnectionQuality, MediaKind};

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteTrack {
    pub sid: String,
    pub name: String,
    pub kind: MediaKind,
    /// `camera`, `microphone`, `screen_share`, `screen_share_audio` or `unknown`.
    pub source: String,
    pub mime: String,
    pub muted: bool,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteParticipant {
    pub sid: String,
    pub identity: String,
    pub name: String,
    pub tracks: Vec<RemoteTrack>,
}

fn track_of(info: &lk::TrackInfo) -> RemoteTrack {
    let kind = if info.r#type == lk::TrackType::Audio as i32 {
        MediaKind::Audio
    } else {
        MediaKind::Video
    };
    let source = match lk::TrackSource::try_from(info.source) {
        Ok(lk::TrackSource::Camera) => "camera",
        Ok(lk::TrackSource::Microphone) => "microphone",
        Ok(lk::TrackSource::ScreenShare) => "screen_share",
        Ok(lk::TrackSource::ScreenShareAudio) => "screen_share_audio",
        _ => "unknown",
    };
    let mime = info
        .codecs
        .first()
        .map(|c| c.mime_type.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| info.mime_type.clone());
    RemoteTrack {
        sid: info.sid.clone(),
        name: info.name.clone(),
        kind,
        source: source.to_owned(),
        mime,
        muted: info.muted,
        width: info.width,
        height: info.height,
    }
}

struct Known {
    participant: RemoteParticipant,
    version: u32,
}

/// Remote participants by sid, updated from JoinResponse and ParticipantUpdate.
#[derive(Default)]
pub(crate) struct Remotes {
    by_sid: HashMap<String, Known>,
    speaking: HashMap<String, f32>,
    dominant: Option<String>,
}

impl Remotes {
    pub fn clear(&mut self) -> Vec<CallEvent> {
        let mut events = Vec::new();
        for (sid, known) in self.by_sid.drain() {
            events.push(CallEvent::ParticipantLeft {
                sid,
                identity: known.participant.identity,
            });
        }
        self.speaking.clear();
        self.dominant = None;
        events
    }

    pub fn identity_of_sid(&self, sid: &str) -> Option<&str> {
        self.by_sid
            .get(sid)
            .map(|k| k.participant.identity.as_str())
    }

    /// The participant sid and track of `track_sid`.
    pub fn track(&self, track_sid: &str) -> Option<(&RemoteParticipant, &RemoteTrack)> {
        self.by_sid.values().find_map(|k| {
            k.participant
                .tracks
                .iter()
                .find(|t| t.sid == track_sid)
                .map(|t| (&k.participant, t))
        })
    }

    pub fn participants(&self) -> Vec<RemoteParticipant> {
        self.by_sid
            .values()
            .map(|k| k.participant.clone())
            .collect()
    }

    /// Applies one participant's info (skipping stale versions) and returns what changed.
    pub fn apply(&mut self, info: &lk::ParticipantInfo, own_sid: &str) -> Vec<CallEvent> {
        let mut events = Vec::new();
        if info.sid == own_sid || info.sid.is_empty() {
            return events;
        }
        if info.state == lk::participant_info::State::Disconnected as i32 {
            if let Some(known) = self.by_sid.remove(&info.sid) {
                self.speaking.remove(&info.sid);
                events.push(CallEvent::ParticipantLeft {
                    sid: info.sid.clone(),
                    identity: known.participant.identity,
                });
            }
            return events;
        }
        let tracks: Vec<RemoteTrack> = info.tracks.iter().map(track_of).collect();
        match self.by_sid.get_mut(&info.sid) {
            None => {
                let participant = RemoteParticipant {
                    sid: info.sid.clone(),
                    identity: info.identity.clone(),
                    name: info.name.clone(),
                    tracks: tracks.clone(),
                };
                events.push(CallEvent::ParticipantJoined(participant.clone()));
                for track in &tracks {
                    events.push(CallEvent::TrackPublished {
                        identity: info.identity.clone(),
                        track: track.clone(),
                    });
                }
                self.by_sid.insert(
                    info.sid.clone(),
                    Known {
                        participant,
                        version: info.version,
                    },
                );
            }
            Some(known) => {
                if info.version < known.version {
                    return events;
                }
                known.version = info.version;
                let identity = known.participant.identity.clone();
                for track in &tracks {
                    match known.participant.tracks.iter().find(|t| t.sid == track.sid) {
                        None => events.push(CallEvent::TrackPublished {
                            identity: identity.clone(),
                            track: track.clone(),
                        }),
                        Some(old) if old.muted != track.muted => {
                            events.push(CallEvent::TrackMuted {
                                identity: identity.clone(),
                                track_sid: track.sid.clone(),
                                muted: track.muted,
                            })
                        }
                        Some(_) => {}
                    }
                }
                for old in &known.participant.tracks {
                    if !tracks.iter().any(|t| t.sid == old.sid) {
                        events.push(CallEvent::TrackUnpublished {
                            identity: identity.clone(),
                            track_sid: old.sid.clone(),
                        });
                    }
                }
                known.participant.tracks = tracks;
                known.participant.name = info.name.clone();
            }
        }
        events
    }

    /// Applies a speakers delta; returns speaking changes and a new dominant speaker.
    pub fn speakers(
        &mut self,
        changed: &lk::SpeakersChanged,
        own_sid: &str,
        own_identity: &str,
    ) -> Vec<CallEvent> {
        let mut events = Vec::new();
        for speaker in &changed.speakers {
            let identity = if speaker.sid == own_sid {
                own_identity.to_owned()
            } else if let Some(id) = self.identity_of_sid(&speaker.sid) {
                id.to_owned()
            } else {
                continue;
            };
            if speaker.active {
                self.speaking.insert(speaker.sid.clone(), speaker.level);
            } else {
                self.speaking.remove(&speaker.sid);
            }
            events.push(CallEvent::Speaking {
                identity,
                speaking: speaker.active,
                level: speaker.level,
            });
        }
        let loudest = self
            .speaking
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(sid, _)| sid.clone());
        // The dominant speaker stays until someone else speaks (calling apps keep the last
        // speaker large through pauses).
        if let Some(sid) = loudest {
            if self.dominant.as_deref() != Some(sid.as_str()) {
                let identity = if sid == own_sid {
                    Some(own_identity.to_owned())
                } else {
                    self.identity_of_sid(&sid).map(str::to_owned)
                };
                self.dominant = Some(sid);
                events.push(CallEvent::DominantSpeaker { identity });
            }
        }
        events
    }

    pub fn quality(
        &self,
        update: &lk::ConnectionQualityUpdate,
        own_sid: &str,
        own_identity: &str,
    ) -> Vec<CallEvent> {
        update
            .updates
            .iter()
            .filter_map(|q| {
                let identity = if q.participant_sid == own_sid {
                    own_identity.to_owned()
                } else {
                    self.identity_of_sid(&q.participant_sid)?.to_owned()
                };
                let quality = match lk::ConnectionQuality::try_from(q.quality) {
                    Ok(lk::ConnectionQuality::Excellent) => ConnectionQuality::Excellent,
                    Ok(lk::ConnectionQuality::Good) => ConnectionQuality::Good,
                    Ok(lk::ConnectionQuality::Lost) => ConnectionQuality::Lost,
                    _ => ConnectionQuality::Poor,
                };
                Some(CallEvent::Quality {
                    identity,
                    quality,
                    score: q.score,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sid: &str, version: u32, tracks: Vec<lk::TrackInfo>) -> lk::ParticipantInfo {
        lk::ParticipantInfo {
            sid: sid.into(),
            identity: format!("id-{sid}"),
            version,
            state: lk::participant_info::State::Active as i32,
            tracks,
            ..Default::default()
        }
    }

    fn track(sid: &str, muted: bool) -> lk::TrackInfo {
        lk::TrackInfo {
            sid: sid.into(),
            r#type: lk::TrackType::Audio as i32,
            muted,
            ..Default::default()
        }
    }

    #[test]
    fn updates_become_events_and_stale_versions_are_ignored() {
        let mut r = Remotes::default();
        let e = r.apply(&info("PA_a", 1, vec![]), "PA_me");
        assert!(matches!(&e[..], [CallEvent::ParticipantJoined(p)] if p.identity == "id-PA_a"));
        let e = r.apply(&info("PA_a", 2, vec![track("TR_1", false)]), "PA_me");
        assert!(matches!(&e[..], [CallEvent::TrackPublished { track, .. }] if track.sid == "TR_1"));
        let e = r.apply(&info("PA_a", 3, vec![track("TR_1", true)]), "PA_me");
        assert!(matches!(
            &e[..],
            [CallEvent::TrackMuted { muted: true, .. }]
        ));
        assert!(r.apply(&info("PA_a", 2, vec![]), "PA_me").is_empty());
        let e = r.apply(&info("PA_a", 4, vec![]), "PA_me");
        assert!(
            matches!(&e[..], [CallEvent::TrackUnpublished { track_sid, .. }] if track_sid == "TR_1")
        );
        let mut gone = info("PA_a", 5, vec![]);
        gone.state = lk::participant_info::State::Disconnected as i32;
        assert!(matches!(
            &r.apply(&gone, "PA_me")[..],
            [CallEvent::ParticipantLeft { .. }]
        ));
        assert!(r.apply(&info("PA_me", 1, vec![]), "PA_me").is_empty());
    }
}
