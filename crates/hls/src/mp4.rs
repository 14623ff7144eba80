//! ISO BMFF boxes for fragmented MP4 (ISO/IEC 14496-12, -15 for avcC, and "Encapsulation of
//! Opus in ISO Base Media File Format" for dOps): an init segment (ftyp + moov) and media
//! fragments (moof + mdat). Track 1 is H.264 video at 90 kHz, track 2 Opus at 48 kHz.

use crate::h264::SpsInfo;

pub const VIDEO_TRACK: u32 = 1;
pub const AUDIO_TRACK: u32 = 2;
pub const VIDEO_TIMESCALE: u32 = 90_000;
pub const AUDIO_TIMESCALE: u32 = 48_000;

/// Writes a box: its size is patched in when `f` is done.
fn boxed(out: &mut Vec<u8>, kind: &[u8; 4], f: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    f(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

fn full_boxed(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    f: impl FnOnce(&mut Vec<u8>),
) {
    boxed(out, kind, |out| {
        out.push(version);
        out.extend_from_slice(&flags.to_be_bytes()[1..]);
        f(out);
    });
}

fn u16be(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn u32be(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// What the init segment describes.
pub struct InitParams<'a> {
    pub sps: &'a [u8],
    pub pps: &'a [u8],
    pub info: SpsInfo,
    pub audio: bool,
}

pub fn init_segment(p: &InitParams<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    boxed(&mut out, b"ftyp", |o| {
        o.extend_from_slice(b"iso6");
        u32be(o, 0);
        for brand in [b"iso6", b"cmfc", b"mp41"] {
            o.extend_from_slice(brand);
        }
    });
    boxed(&mut out, b"moov", |o| {
        full_boxed(o, b"mvhd", 0, 0, |o| {
            u32be(o, 0); // creation
            u32be(o, 0); // modification
            u32be(o, 1000);
            u32be(o, 0); // duration: unknown, it is live
            u32be(o, 0x0001_0000); // rate 1.0
            u16be(o, 0x0100); // volume 1.0
            o.extend_from_slice(&[0; 10]);
            MATRIX.iter().for_each(|v| u32be(o, *v));
            o.extend_from_slice(&[0; 24]);
            u32be(o, AUDIO_TRACK + 1); // next track id
        });
        video_trak(o, p);
        if p.audio {
            audio_trak(o);
        }
        boxed(o, b"mvex", |o| {
            let tracks: &[u32] = if p.audio {
                &[VIDEO_TRACK, AUDIO_TRACK]
            } else {
                &[VIDEO_TRACK]
            };
            for track in tracks {
                full_boxed(o, b"trex", 0, 0, |o| {
                    u32be(o, *track);
                    u32be(o, 1); // sample description index
                    u32be(o, 0);
                    u32be(o, 0);
                    u32be(o, 0);
                });
            }
        });
    });
    out
}

fn tkhd(o: &mut Vec<u8>, track: u32, audio: bool, width: u32, height: u32) {
    // Flags: enabled, in movie.
    full_boxed(o, b"tkhd", 0, 3, |o| {
        u32be(o, 0);
        u32be(o, 0);
        u32be(o, track);
        u32be(o, 0);
        u32be(o, 0); // duration
        o.extend_from_slice(&[0; 8]);
        u16be(o, 0); // layer
        u16be(o, 0); // alternate group
        u16be(o, if audio { 0x0100 } else { 0 });
        u16be(o, 0);
        MATRIX.iter().for_each(|v| u32be(o, *v));
        u32be(o, width << 16);
        u32be(o, height << 16);
    });
}

fn mdhd_hdlr(o: &mut Vec<u8>, timescale: u32, handler: &[u8; 4], name: &str) {
    full_boxed(o, b"mdhd", 0, 0, |o| {
        u32be(o, 0);
        u32be(o, 0);
        u32be(o, timescale);
        u32be(o, 0);
        u16be(o, 0x55c4); // "und"
        u16be(o, 0);
    });
    full_boxed(o, b"hdlr", 0, 0, |o| {
        u32be(o, 0);
        o.extend_from_slice(handler);
        o.extend_from_slice(&[0; 12]);
        o.extend_from_slice(name.as_bytes());
        o.push(0);
    });
}

fn dinf(o: &mut Vec<u8>) {
    boxed(o, b"dinf", |o| {
        full_boxed(o, b"dref", 0, 0, |o| {
            u32be(o, 1);
            // Flag 1: the media is in this file.
            full_boxed(o, b"url ", 0, 1, |_| {});
        });
    });
}

/// The sample tables of a fragmented file: empty, samples come in fragments.
fn empty_tables(o: &mut Vec<u8>) {
    for kind in [b"stts", b"stsc", b"stco"] {
        full_boxed(o, kind, 0, 0, |o| u32be(o, 0));
    }
    full_boxed(o, b"stsz", 0, 0, |o| {
        u32be(o, 0);
        u32be(o, 0);
    });
}

fn video_trak(o: &mut Vec<u8>, p: &InitParams<'_>) {
    let (w, h) = (p.info.width, p.info.height);
    boxed(o, b"trak", |o| {
        tkhd(o, VIDEO_TRACK, false, w, h);
        boxed(o, b"mdia", |o| {
            mdhd_hdlr(o, VIDEO_TIMESCALE, b"vide", "Confab video");
            boxed(o, b"minf", |o| {
                full_boxed(o, b"vmhd", 0, 1, |o| o.extend_from_slice(&[0; 8]));
                dinf(o);
                boxed(o, b"stbl", |o| {
                    full_boxed(o, b"stsd", 0, 0, |o| {
                        u32be(o, 1);
                        avc1(o, p);
                    });
                    empty_tables(o);
                });
            });
        });
    });
}

fn avc1(o: &mut Vec<u8>, p: &InitParams<'_>) {
    boxed(o, b"avc1", |o| {
        o.extend_from_slice(&[0; 6]);
        u16be(o, 1); // data reference index
        o.extend_from_slice(&[0; 16]);
        u16be(o, p.info.width as u16);
        u16be(o, p.info.height as u16);
        u32be(o, 0x0048_0000); // 72 dpi
        u32be(o, 0x0048_0000);
        u32be(o, 0);
        u16be(o, 1); // frames per sample
        o.extend_from_slice(&[0; 32]); // compressor name
        u16be(o, 0x0018);
        o.extend_from_slice(&[0xff, 0xff]);
        boxed(o, b"avcC", |o| {
            o.push(1);
            o.push(p.info.profile_idc);
            o.push(p.info.constraints);
            o.push(p.info.level_idc);
            o.push(0xfc | 3); // 4-byte NAL lengths
            o.push(0xe0 | 1);
            u16be(o, p.sps.len() as u16);
            o.extend_from_slice(p.sps);
            o.push(1);
            u16be(o, p.pps.len() as u16);
            o.extend_from_slice(p.pps);
            if matches!(p.info.profile_idc, 100 | 110 | 122 | 144) {
                o.push(0xfc | (p.info.chroma_format_idc as u8 & 3));
                o.push(0xf8 | ((p.info.bit_depth_luma - 8) as u8 & 7));
                o.push(0xf8 | ((p.info.bit_depth_chroma - 8) as u8 & 7));
                o.push(0);
            }
        });
    });
}

fn audio_trak(o: &mut Vec<u8>) {
    boxed(o, b"trak", |o| {
        tkhd(o, AUDIO_TRACK, true, 0, 0);
        boxed(o, b"mdia", |o| {
            mdhd_hdlr(o, AUDIO_TIMESCALE, b"soun", "Confab audio");
            boxed(o, b"minf", |o| {
                full_boxed(o, b"smhd", 0, 0, |o| u32be(o, 0));
                dinf(o);
                boxed(o, b"stbl", |o| {
                    full_boxed(o, b"stsd", 0, 0, |o| {
                        u32be(o, 1);
                        boxed(o, b"Opus", |o| {
                            o.extend_from_slice(&[0; 6]);
                            u16be(o, 1);
                            o.extend_from_slice(&[0; 8]);
                            u16be(o, 2); // channels
                            u16be(o, 16); // sample size
                            u32be(o, 0);
                            u32be(o, AUDIO_TIMESCALE << 16);
                            boxed(o, b"dOps", |o| {
                                o.push(0); // version
                                o.push(2); // output channels
                                u16be(o, 0); // pre-skip: the stream is joined mid-way
                                u32be(o, AUDIO_TIMESCALE);
                                u16be(o, 0); // output gain
                                o.push(0); // channel mapping family
                            });
                        });
                    });
                    empty_tables(o);
                });
            });
        });
    });
}

/// One sample of a fragment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub duration: u32,
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// One track's run in a fragment.
pub struct Run<'a> {
    pub track: u32,
    pub base_time: u64,
    pub samples: &'a [Sample],
    pub video: bool,
}

/// A fragment: moof (one traf per run) and mdat (the runs' data, in order).
pub fn fragment(sequence: u32, runs: &[Run<'_>]) -> Vec<u8> {
    let runs: Vec<&Run<'_>> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    // The moof's size does not depend on the data offsets' values: write it once with zero
    // offsets to learn it, then for real.
    let moof = |offsets: &[u32]| {
        let mut o = Vec::new();
        boxed(&mut o, b"moof", |o| {
            full_boxed(o, b"mfhd", 0, 0, |o| u32be(o, sequence));
            for (run, offset) in runs.iter().zip(offsets) {
                boxed(o, b"traf", |o| {
                    // Flag 0x020000: offsets count from the moof.
                    full_boxed(o, b"tfhd", 0, 0x02_0000, |o| u32be(o, run.track));
                    full_boxed(o, b"tfdt", 1, 0, |o| {
                        o.extend_from_slice(&run.base_time.to_be_bytes())
                    });
                    // data offset, durations, sizes, and for video each sample's flags.
                    let flags = 0x0001 | 0x0100 | 0x0200 | if run.video { 0x0400 } else { 0 };
                    full_boxed(o, b"trun", 0, flags, |o| {
                        u32be(o, run.samples.len() as u32);
                        u32be(o, *offset);
                        for s in run.samples {
                            u32be(o, s.duration);
                            u32be(o, s.data.len() as u32);
                            if run.video {
                                // depends on others (1) and not a sync sample, or a keyframe (2).
                                u32be(o, if s.keyframe { 0x0200_0000 } else { 0x0101_0000 });
                            }
                        }
                    });
                });
            }
        });
        o
    };
    let moof_len = moof(&vec![0; runs.len()]).len() as u32;
    let mut offsets = Vec::with_capacity(runs.len());
    let mut at = moof_len + 8;
    for run in &runs {
        offsets.push(at);
        at += run.samples.iter().map(|s| s.data.len() as u32).sum::<u32>();
    }
    let mut out = moof(&offsets);
    boxed(&mut out, b"mdat", |o| {
        for run in &runs {
            for s in run.samples {
                o.extend_from_slice(&s.data);
            }
        }
    });
    out
}
