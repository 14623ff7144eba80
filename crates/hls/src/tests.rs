use super::*;
use crate::h264::fixture_sps;

const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];

/// A box: its type, and its body (after size and type).
#[derive(Debug)]
struct Mp4Box<'a> {
    kind: [u8; 4],
    body: &'a [u8],
    /// Offset of the box's first byte in the walked buffer.
    at: usize,
}

fn boxes(data: &[u8], base: usize) -> Vec<Mp4Box<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 8 <= data.len() {
        let size = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && i + size <= data.len(),
            "box size {size} at {i} fits"
        );
        out.push(Mp4Box {
            kind: data[i + 4..i + 8].try_into().unwrap(),
            body: &data[i + 8..i + size],
            at: base + i,
        });
        i += size;
    }
    assert_eq!(i, data.len(), "boxes fill the buffer exactly");
    out
}

fn child<'a>(parent: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    boxes(parent, 0)
        .into_iter()
        .find(|b| &b.kind == kind)
        .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(kind)))
        .body
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes(b[i..i + 4].try_into().unwrap())
}

fn annex_b(units: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for u in units {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(u);
    }
    out
}

/// Frame `n`'s slice: its number in the payload, so it can be found again in the mdat.
fn slice(n: u32, key: bool) -> Vec<u8> {
    // Never two zero bytes in a row: a real NAL unit has none (emulation prevention).
    let mut s = vec![if key { 0x65 } else { 0x41 }];
    s.extend_from_slice(&[
        0x80 | (n >> 14) as u8,
        0x80 | ((n >> 7) & 0x7f) as u8,
        0x80 | (n & 0x7f) as u8,
    ]);
    s.extend_from_slice(&[0x80; 20]);
    s
}

/// A 20 ms CELT Opus packet (config 31, one frame) carrying `n`.
fn opus(n: u32) -> Vec<u8> {
    let mut p = vec![31 << 3];
    p.extend_from_slice(&n.to_be_bytes());
    p
}

/// A sample's (duration, size, flags).
type Sample = (u32, u32, Option<u32>);

struct Parsed {
    sequence: u32,
    /// Per track: (track id, tfdt, samples, data offset).
    tracks: Vec<(u32, u64, Vec<Sample>, u32)>,
    mdat_at: usize,
}

fn parse_fragment(data: &[u8]) -> Parsed {
    let top = boxes(data, 0);
    assert_eq!(&top[0].kind, b"moof");
    assert_eq!(&top[1].kind, b"mdat");
    let moof = top[0].body;
    let sequence = u32_at(child(moof, b"mfhd"), 4);
    let mut tracks = Vec::new();
    for traf in boxes(moof, 0).into_iter().filter(|b| &b.kind == b"traf") {
        let tfhd = child(traf.body, b"tfhd");
        assert_eq!(
            u32_at(tfhd, 0) & 0xff_ffff,
            0x02_0000,
            "offsets from the moof"
        );
        let track = u32_at(tfhd, 4);
        let tfdt = child(traf.body, b"tfdt");
        assert_eq!(tfdt[0], 1);
        let base = u64::from_be_bytes(tfdt[4..12].try_into().unwrap());
        let trun = child(traf.body, b"trun");
        let flags = u32_at(trun, 0) & 0xff_ffff;
        let count = u32_at(trun, 4) as usize;
        let offset = u32_at(trun, 8);
        let mut samples = Vec::new();
        let mut i = 12;
        for _ in 0..count {
            let duration = u32_at(trun, i);
            let size = u32_at(trun, i + 4);
            i += 8;
            let sample_flags = (flags & 0x400 != 0).then(|| {
                i += 4;
                u32_at(trun, i - 4)
            });
            samples.push((duration, size, sample_flags));
        }
        assert_eq!(i, trun.len());
        tracks.push((track, base, samples, offset));
    }
    Parsed {
        sequence,
        tracks,
        mdat_at: top[1].at + 8,
    }
}

fn stream(segmenter: &mut CmafSegmenter, frames: u32) -> Vec<CmafSegment> {
    stream_with_audio_lag(segmenter, frames, 0)
}

/// 30 fps video with a keyframe each second, and 20 ms Opus packets that arrive `lag` video
/// frames after the video of their time (audio often trails video out of an SFU).
fn stream_with_audio_lag(segmenter: &mut CmafSegmenter, frames: u32, lag: u32) -> Vec<CmafSegment> {
    let audio_of =
        |n: u32| (u64::from(n) * 1_600..u64::from(n + 1) * 1_600).filter(|t| t % 960 == 0);
    let mut out = Vec::new();
    for n in 0..frames + lag {
        if n < frames {
            let key = n % 30 == 0;
            let pts = u64::from(n) * 3_000;
            let s = slice(n, key);
            let au = if key {
                annex_b(&[&fixture_sps(), &PPS, &s])
            } else {
                annex_b(&[&s])
            };
            out.extend(segmenter.push_video(&au, pts, key).unwrap());
        }
        // Audio: the 20 ms packets that start within frame (n - lag)'s 33 ms.
        if let Some(m) = n.checked_sub(lag) {
            for audio_pts in audio_of(m) {
                segmenter
                    .push_audio(&opus((audio_pts / 960) as u32), audio_pts)
                    .unwrap();
            }
        }
    }
    out.extend(segmenter.finish());
    out
}

fn config() -> SegmenterConfig {
    SegmenterConfig {
        target_duration: Duration::from_secs(1),
        audio: true,
    }
}

#[test]
fn segments_cut_at_keyframes_carry_every_frame_with_continuous_times() {
    let mut segmenter = CmafSegmenter::new(config());
    let segments = stream(&mut segmenter, 95);
    assert_eq!(segments.len(), 4, "three 1 s segments and a 5-frame tail");
    let mut next_video = 0u64;
    let mut next_audio = None;
    let mut frame = 0u32;
    for (i, segment) in segments.iter().enumerate() {
        assert_eq!(segment.sequence, i as u64 + 1);
        assert!(segment.starts_with_keyframe);
        assert_eq!(segment.init_generation, 1);
        let parsed = parse_fragment(&segment.data);
        assert_eq!(parsed.sequence as u64, segment.sequence);
        let (track, base, samples, offset) = &parsed.tracks[0];
        assert_eq!(*track, 1);
        assert_eq!(*base, next_video, "video decode times continue");
        assert!(*offset as usize >= parsed.mdat_at);
        let mut at = *offset as usize;
        for (j, (duration, size, flags)) in samples.iter().enumerate() {
            assert_eq!(*duration, 3_000);
            let key = frame % 30 == 0;
            assert_eq!(
                *flags,
                Some(if key { 0x0200_0000 } else { 0x0101_0000 }),
                "frame {frame}'s flags"
            );
            // The sample is the slice in AVCC form: a 4-byte length, then the unit.
            let data = &segment.data[at..at + *size as usize];
            assert_eq!(u32_at(data, 0) as usize, data.len() - 4);
            assert_eq!(&data[4..], slice(frame, key).as_slice(), "sample {j}");
            at += *size as usize;
            next_video += u64::from(*duration);
            frame += 1;
        }
        assert_eq!(
            segment.duration,
            Duration::from_secs_f64(samples.len() as f64 * 3_000.0 / 90_000.0)
        );
        let (track, base, samples, offset) = &parsed.tracks[1];
        assert_eq!(*track, 2);
        if let Some(expected) = next_audio {
            assert_eq!(*base, expected, "audio decode times continue");
        } else {
            assert_eq!(*base, 0);
        }
        let mut at = *offset as usize;
        let mut pts = *base;
        for (duration, size, flags) in samples {
            assert_eq!(*duration, 960);
            assert_eq!(*flags, None);
            let packet = &segment.data[at..at + *size as usize];
            assert_eq!(packet, opus((pts / 960) as u32).as_slice());
            at += *size as usize;
            pts += u64::from(*duration);
        }
        assert_eq!(at, segment.data.len(), "the audio ends the mdat");
        next_audio = Some(pts);
    }
    assert_eq!(frame, 95, "every video frame is in a segment");
}

#[test]
fn audio_that_arrives_after_the_cut_goes_in_the_next_segment_without_a_gap() {
    let mut segmenter = CmafSegmenter::new(config());
    // Audio 3 frames (100 ms) behind the video.
    let segments = stream_with_audio_lag(&mut segmenter, 95, 3);
    let mut next_audio = None;
    let mut packets = 0;
    for segment in &segments {
        let parsed = parse_fragment(&segment.data);
        let (_, base, samples, _) = &parsed.tracks[1];
        if let Some(expected) = next_audio {
            assert_eq!(*base, expected, "audio decode times continue");
        }
        next_audio = Some(base + samples.iter().map(|s| u64::from(s.0)).sum::<u64>());
        packets += samples.len();
    }
    // 95 frames of 3,000 ticks: 3.1667 s, 158 packets of 20 ms start within it.
    assert_eq!(packets, 159);
    assert_eq!(segmenter.dropped, 0);
}

#[test]
fn the_init_segment_describes_the_stream() {
    let mut segmenter = CmafSegmenter::new(config());
    assert!(segmenter.init_segment().is_none());
    stream(&mut segmenter, 3);
    let (generation, init) = segmenter.init_segment().unwrap();
    assert_eq!(generation, 1);
    let top = boxes(init, 0);
    assert_eq!(&top[0].kind, b"ftyp");
    let moov = top[1].body;
    let traks: Vec<_> = boxes(moov, 0)
        .into_iter()
        .filter(|b| &b.kind == b"trak")
        .collect();
    assert_eq!(traks.len(), 2);
    let video = traks[0].body;
    let tkhd = child(video, b"tkhd");
    assert_eq!(
        (u32_at(tkhd, 76) >> 16, u32_at(tkhd, 80) >> 16),
        (1280, 720)
    );
    let stsd = child(
        child(child(child(video, b"mdia"), b"minf"), b"stbl"),
        b"stsd",
    );
    let avc1 = child(&stsd[8..], b"avc1");
    let avcc = child(&avc1[78..], b"avcC");
    let sps = fixture_sps();
    assert_eq!(&avcc[1..4], &sps[1..4], "profile, constraints, level");
    assert_eq!(avcc[4], 0xff, "4-byte lengths");
    assert_eq!(
        usize::from(u16::from_be_bytes([avcc[6], avcc[7]])),
        sps.len()
    );
    assert_eq!(&avcc[8..8 + sps.len()], sps.as_slice());
    let pps_at = 8 + sps.len() + 1;
    assert_eq!(&avcc[pps_at + 2..], &PPS);
    let audio = traks[1].body;
    let mdia = child(audio, b"mdia");
    assert_eq!(u32_at(child(mdia, b"mdhd"), 12), 48_000);
    let stsd = child(child(child(mdia, b"minf"), b"stbl"), b"stsd");
    let opus_entry = child(&stsd[8..], b"Opus");
    let dops = child(&opus_entry[28..], b"dOps");
    assert_eq!(dops, &[0, 2, 0, 0, 0, 0, 0xbb, 0x80, 0, 0, 0]);
    let mvex = child(moov, b"mvex");
    assert_eq!(boxes(mvex, 0).len(), 2);
}

#[test]
fn frames_before_the_first_keyframe_and_audio_before_video_are_dropped() {
    let mut segmenter = CmafSegmenter::new(config());
    segmenter.push_audio(&opus(0), 0).unwrap();
    assert!(segmenter
        .push_video(&annex_b(&[&slice(0, false)]), 0, false)
        .unwrap()
        .is_none());
    // A keyframe without parameter sets cannot start either.
    segmenter
        .push_video(&annex_b(&[&slice(1, true)]), 3_000, true)
        .unwrap();
    assert!(segmenter.init_segment().is_none());
    assert_eq!(segmenter.dropped, 3);
    segmenter
        .push_video(
            &annex_b(&[&fixture_sps(), &PPS, &slice(2, true)]),
            6_000,
            true,
        )
        .unwrap();
    assert!(segmenter.init_segment().is_some());
    // Out of order: dropped, not put back in time.
    segmenter
        .push_video(&annex_b(&[&slice(3, false)]), 6_000, false)
        .unwrap();
    assert_eq!(segmenter.dropped, 4);
    let last = segmenter.finish().unwrap();
    let parsed = parse_fragment(&last.data);
    assert_eq!(parsed.tracks.len(), 1, "no audio in the segment");
    assert_eq!(parsed.tracks[0].2.len(), 1);
}

#[test]
fn new_parameter_sets_cut_the_segment_and_start_a_new_generation() {
    let mut segmenter = CmafSegmenter::new(config());
    let mut playlist = CmafPlaylist::new(3);
    let sps = fixture_sps();
    segmenter
        .push_video(&annex_b(&[&sps, &PPS, &slice(0, true)]), 0, true)
        .unwrap();
    segmenter
        .push_video(&annex_b(&[&slice(1, false)]), 3_000, false)
        .unwrap();
    let other_pps = [0x68, 0xce, 0x3c, 0x81];
    let cut = segmenter
        .push_video(&annex_b(&[&sps, &other_pps, &slice(2, true)]), 6_000, true)
        .unwrap()
        .expect("a new stream description ends the segment early");
    assert_eq!(cut.init_generation, 1);
    playlist.add(&cut);
    assert_eq!(segmenter.init_segment().unwrap().0, 2);
    let tail = segmenter.finish().unwrap();
    assert_eq!(tail.init_generation, 2);
    playlist.add(&tail);
    let text = playlist.render();
    assert!(text.contains(
        "#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:0.067,\nseg-1.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\"\n#EXTINF:0.033,\nseg-2.m4s\n"
    ), "{text}");
}

#[test]
fn the_playlist_keeps_a_window_and_ends() {
    let mut playlist = CmafPlaylist::new(2);
    for sequence in 1..=3 {
        playlist.add(&CmafSegment {
            sequence,
            duration: Duration::from_millis(1_001),
            init_generation: 1,
            starts_with_keyframe: true,
            data: Vec::new(),
        });
    }
    assert_eq!(playlist.listed(), vec![2, 3]);
    let text = playlist.render();
    assert!(text.starts_with(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n"
    ));
    assert!(!text.contains("seg-1.m4s"));
    assert!(!text.contains("ENDLIST"));
    playlist.end();
    assert!(playlist
        .render()
        .ends_with("#EXTINF:1.001,\nseg-3.m4s\n#EXT-X-ENDLIST\n"));
}

#[test]
fn file_names_parse_strictly() {
    assert_eq!(CmafFile::parse("playlist.m3u8"), Some(CmafFile::Playlist));
    assert_eq!(CmafFile::parse("init-3.mp4"), Some(CmafFile::Init(3)));
    assert_eq!(CmafFile::parse("seg-42.m4s"), Some(CmafFile::Segment(42)));
    assert_eq!(
        CmafFile::parse(&segment_name(7)),
        Some(CmafFile::Segment(7))
    );
    assert_eq!(CmafFile::parse(&init_name(7)), Some(CmafFile::Init(7)));
    for junk in [
        "seg-.m4s",
        "seg--1.m4s",
        "seg-1.ts",
        "init-x.mp4",
        "../seg-1.m4s",
        "seg-1234567890123.m4s",
        "init-99999999999.mp4",
    ] {
        assert_eq!(CmafFile::parse(junk), None, "{junk}");
    }
}

#[test]
fn opus_durations_come_from_the_table_of_contents() {
    assert_eq!(opus_packet_samples(&[31 << 3]), Some(960)); // CELT 20 ms
    assert_eq!(opus_packet_samples(&[(31 << 3) | 1, 0]), Some(1920)); // two frames
    assert_eq!(opus_packet_samples(&[1 << 3]), Some(960)); // SILK 20 ms
    assert_eq!(opus_packet_samples(&[(16 << 3) | 3, 4]), Some(480)); // 4 x 2.5 ms
    assert_eq!(opus_packet_samples(&[(31 << 3) | 3, 0]), None); // zero frames
    assert_eq!(opus_packet_samples(&[]), None);
}

#[test]
fn garbage_gives_errors_not_panics() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut segmenter = CmafSegmenter::new(config());
    segmenter
        .push_video(&annex_b(&[&fixture_sps(), &PPS, &slice(0, true)]), 0, true)
        .unwrap();
    for i in 0..5_000u64 {
        let len = (next() % 64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 3 == 0 && bytes.len() > 4 {
            bytes[..4].copy_from_slice(&[0, 0, 0, 1]);
        }
        let _ = segmenter.push_video(&bytes, 3_000 * (i + 1), next() % 2 == 0);
        let _ = segmenter.push_audio(&bytes, 1_600 * (i + 1));
        let _ = parse_sps(&bytes);
    }
    assert!(segmenter.push_video(&[], 0, true).is_err());
    assert_eq!(segmenter.push_audio(&[], 0), Err(HlsMuxError::BadOpus));
}
