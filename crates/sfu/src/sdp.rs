//! The few SDP edits str0m has no API for: as the answerer, the SFU names each media section it
//! sends (`a=msid:PA_x|TR_y TR_y`, which LiveKit clients need to map a track to its publisher)
//! and marks the sections it has nothing for `inactive`, so a browser does not fire `ontrack`
//! for an empty placeholder (a track it would then drop for good).

use std::collections::HashMap;

/// One media section of an SDP, as far as the engine cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub mid: String,
    pub kind: SectionKind,
    pub direction: Direction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectionKind {
    Audio,
    Video,
    Application,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

fn lines(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.split('\n').map(|l| l.trim_end_matches('\r'))
}

/// The session block (first) and each media section's lines, blank lines left out.
fn blocks(sdp: &str) -> Vec<Vec<&str>> {
    let mut blocks: Vec<Vec<&str>> = vec![Vec::new()];
    for line in lines(sdp).filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            blocks.push(Vec::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push(line);
        }
    }
    blocks
}

/// The media sections of `sdp`, in order.
pub(crate) fn sections(sdp: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in lines(sdp) {
        if let Some(rest) = line.strip_prefix("m=") {
            let kind = match rest.split(' ').next().unwrap_or("") {
                "audio" => SectionKind::Audio,
                "video" => SectionKind::Video,
                "application" => SectionKind::Application,
                _ => SectionKind::Other,
            };
            out.push(Section {
                mid: String::new(),
                kind,
                direction: Direction::SendRecv,
            });
        } else if let Some(section) = out.last_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                section.mid = mid.trim().to_owned();
            } else {
                match line {
                    "a=sendonly" => section.direction = Direction::SendOnly,
                    "a=recvonly" => section.direction = Direction::RecvOnly,
                    "a=inactive" => section.direction = Direction::Inactive,
                    "a=sendrecv" => section.direction = Direction::SendRecv,
                    _ => {}
                }
            }
        }
    }
    out
}

/// What the answer should say about one section the SFU sends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// Carries this track: `stream` is `PA_x|TR_y`, `track` is `TR_y`.
    Track { stream: String, track: String },
    /// Nothing to send yet.
    Idle,
}

/// Rewrites the answer's sending sections: an `a=msid` naming the forwarded track (ssrc-level
/// msid lines follow it), or `a=inactive` without msid for an idle one. Sections not in
/// `outgoing` are left as str0m wrote them.
pub(crate) fn rewrite_answer(sdp: &str, outgoing: &HashMap<String, Outgoing>) -> String {
    // The session part and the media sections, each section edited on its own.
    let blocks = blocks(sdp);
    let mut out = String::with_capacity(sdp.len() + 256);
    for (index, block) in blocks.iter().enumerate() {
        let mid = block
            .iter()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .map(str::trim);
        let plan = if index == 0 {
            None
        } else {
            mid.and_then(|m| outgoing.get(m))
        };
        let Some(plan) = plan else {
            for line in block {
                out.push_str(line);
                out.push_str("\r\n");
            }
            continue;
        };
        let mut wrote_msid = false;
        for line in block {
            let is_direction = matches!(
                *line,
                "a=sendonly" | "a=recvonly" | "a=inactive" | "a=sendrecv"
            );
            match plan {
                Outgoing::Idle => {
                    if is_direction {
                        out.push_str("a=inactive\r\n");
                        continue;
                    }
                    if line.starts_with("a=msid:") || is_ssrc_msid(line) {
                        continue;
                    }
                }
                Outgoing::Track { stream, track } => {
                    if line.starts_with("a=msid:") {
                        if !wrote_msid {
                            out.push_str(&format!("a=msid:{stream} {track}\r\n"));
                            wrote_msid = true;
                        }
                        continue;
                    }
                    if let Some(ssrc) = ssrc_msid_ssrc(line) {
                        out.push_str(&format!("a=ssrc:{ssrc} msid:{stream} {track}\r\n"));
                        continue;
                    }
                    if is_direction {
                        out.push_str("a=sendonly\r\n");
                        if !wrote_msid {
                            out.push_str(&format!("a=msid:{stream} {track}\r\n"));
                            wrote_msid = true;
                        }
                        continue;
                    }
                }
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

/// Puts `codec`'s payload types (e.g. `H264`) first on section `mid`'s `m=` line, so a
/// publisher sends the codec it asked for: a browser sends the first codec of the answer.
pub(crate) fn prefer_codec(sdp: &str, mid: &str, codec: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    let blocks = blocks(sdp);
    for (index, block) in blocks.iter().enumerate() {
        let is_target = index > 0
            && block
                .iter()
                .any(|l| l.strip_prefix("a=mid:").map(str::trim) == Some(mid));
        let preferred: Vec<&str> = if is_target {
            block
                .iter()
                .filter_map(|l| l.strip_prefix("a=rtpmap:"))
                .filter_map(|rest| rest.split_once(' '))
                .filter(|(_, enc)| {
                    enc.split('/')
                        .next()
                        .is_some_and(|name| name.eq_ignore_ascii_case(codec))
                })
                .map(|(pt, _)| pt)
                .collect()
        } else {
            Vec::new()
        };
        for line in block {
            if is_target && line.starts_with("m=") && !preferred.is_empty() {
                let mut parts: Vec<&str> = line.split(' ').collect();
                if parts.len() > 3 {
                    let pts = parts.split_off(3);
                    let (first, rest): (Vec<&str>, Vec<&str>) =
                        pts.into_iter().partition(|pt| preferred.contains(pt));
                    parts.extend(first);
                    parts.extend(rest);
                }
                out.push_str(&parts.join(" "));
            } else {
                out.push_str(line);
            }
            out.push_str("\r\n");
        }
    }
    out
}

fn is_ssrc_msid(line: &str) -> bool {
    ssrc_msid_ssrc(line).is_some()
}

/// The ssrc of an `a=ssrc:N msid:...` line.
fn ssrc_msid_ssrc(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("a=ssrc:")?;
    let (ssrc, attr) = rest.split_once(' ')?;
    attr.starts_with("msid:").then_some(ssrc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\na=msid:abc def\r\na=ssrc:11 cname:x\r\na=ssrc:11 msid:abc def\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\na=msid:ghi jkl\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\n";

    #[test]
    fn the_asked_codec_goes_first_on_its_section_only() {
        let sdp = "v=0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=rtpmap:102 H264/90000\r\na=rtpmap:103 rtx/90000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n";
        let out = prefer_codec(sdp, "0", "H264");
        assert!(
            out.contains("m=video 9 UDP/TLS/RTP/SAVPF 102 96 97 103\r\n"),
            "{out}"
        );
        assert!(
            out.contains("m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\n"),
            "{out}"
        );
    }

    #[test]
    fn sections_are_read_in_order() {
        let s = sections(ANSWER);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].mid, "0");
        assert_eq!(s[0].kind, SectionKind::Audio);
        assert_eq!(s[0].direction, Direction::SendOnly);
        assert_eq!(s[2].direction, Direction::RecvOnly);
        assert_eq!(s[3].kind, SectionKind::Application);
    }

    #[test]
    fn assigned_sections_name_their_track_and_idle_ones_go_inactive() {
        let mut plan = HashMap::new();
        plan.insert(
            "0".to_owned(),
            Outgoing::Track {
                stream: "PA_a|TR_b".into(),
                track: "TR_b".into(),
            },
        );
        plan.insert("1".to_owned(), Outgoing::Idle);
        let out = rewrite_answer(ANSWER, &plan);
        let s = sections(&out);
        assert_eq!(s[0].direction, Direction::SendOnly);
        assert_eq!(s[1].direction, Direction::Inactive);
        assert_eq!(s[2].direction, Direction::RecvOnly);
        assert!(out.contains("a=msid:PA_a|TR_b TR_b\r\n"));
        assert!(out.contains("a=ssrc:11 msid:PA_a|TR_b TR_b\r\n"));
        assert!(!out.contains("ghi jkl"));
        assert!(!out.contains("abc def"));
        assert_eq!(out.matches("a=msid:").count(), 1);
    }
}
