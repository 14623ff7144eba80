//! A minimal MPEG transport stream writer for one H.264 video stream: what an HLS segment
//! needs and nothing more (ISO/IEC 13818-1: PAT, PMT, PES with PTS, PCR on the video PID).

const PACKET: usize = 188;
const PID_PAT: u16 = 0x0000;
const PID_PMT: u16 = 0x1000;
const PID_VIDEO: u16 = 0x0100;
const STREAM_TYPE_H264: u8 = 0x1b;
/// The 90 kHz clock every timestamp in a transport stream uses.
pub const CLOCK_HZ: u64 = 90_000;
/// The access unit delimiter HLS players expect before each frame.
const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];

/// MPEG-2's CRC-32 (polynomial 0x04C11DB7, no reflection), over PSI sections.
fn crc32_mpeg(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Writes transport stream packets; continuity counters carry over from segment to segment.
#[derive(Debug, Default)]
pub struct TsWriter {
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
}

impl TsWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The program tables, which start every segment so each one plays on its own.
    pub fn write_tables(&mut self, out: &mut Vec<u8>) {
        let pat = section(
            0x00,
            0x0001,
            &[0x00, 0x01, 0xe0 | (PID_PMT >> 8) as u8, PID_PMT as u8],
        );
        let cc = next(&mut self.cc_pat);
        psi_packet(out, PID_PAT, cc, &pat);
        let pmt = section(
            0x02,
            0x0001,
            &[
                0xe0 | (PID_VIDEO >> 8) as u8,
                PID_VIDEO as u8, // PCR PID
                0xf0,
                0x00, // no program descriptors
                STREAM_TYPE_H264,
                0xe0 | (PID_VIDEO >> 8) as u8,
                PID_VIDEO as u8,
                0xf0,
                0x00,
            ],
        );
        let cc = next(&mut self.cc_pmt);
        psi_packet(out, PID_PMT, cc, &pmt);
    }

    /// One H.264 access unit (Annex B NAL units) presented at `pts` (90 kHz ticks).
    pub fn write_frame(&mut self, out: &mut Vec<u8>, annex_b: &[u8], pts: u64, keyframe: bool) {
        let mut pes = Vec::with_capacity(annex_b.len() + 32);
        pes.extend_from_slice(&[0, 0, 1, 0xe0, 0, 0]); // video stream 0, unbounded length
        pes.push(0x84); // data aligned
        pes.push(0x80); // PTS only: no B-frames, so DTS = PTS
        pes.push(5);
        pes.extend_from_slice(&timestamp(0b0010, pts));
        pes.extend_from_slice(&AUD);
        pes.extend_from_slice(annex_b);

        let pcr = pts.saturating_sub(CLOCK_HZ / 10);
        let mut rest = &pes[..];
        let mut first = true;
        while !rest.is_empty() {
            // The adaptation field after its length byte; `None` when the packet has none.
            let mut adaptation: Option<Vec<u8>> = first.then(|| {
                // PCR with every frame; random access on keyframes.
                let mut a = vec![if keyframe { 0x50 } else { 0x10 }];
                a.extend_from_slice(&pcr_bytes(pcr));
                a
            });
            let overhead = adaptation.as_ref().map_or(0, |a| 1 + a.len());
            let room = PACKET - 4 - overhead;
            if rest.len() < room {
                // The last packet: stuff the adaptation field so the packet is 188 bytes.
                let short = room - rest.len();
                match adaptation.as_mut() {
                    Some(a) => a.extend(std::iter::repeat_n(0xff, short)),
                    None if short == 1 => adaptation = Some(Vec::new()),
                    None => {
                        let mut a = vec![0x00];
                        a.extend(std::iter::repeat_n(0xff, short - 2));
                        adaptation = Some(a);
                    }
                }
            }
            let payload_len = rest.len().min(room);
            let cc = next(&mut self.cc_video);
            let start = out.len();
            out.push(0x47);
            out.push(if first { 0x40 } else { 0x00 } | (PID_VIDEO >> 8) as u8);
            out.push(PID_VIDEO as u8);
            match &adaptation {
                Some(a) => {
                    out.push(0x30 | cc);
                    out.push(a.len() as u8);
                    out.extend_from_slice(a);
                }
                None => out.push(0x10 | cc),
            }
            out.extend_from_slice(&rest[..payload_len]);
            debug_assert_eq!(out.len() - start, PACKET);
            rest = &rest[payload_len..];
            first = false;
        }
    }
}

fn next(cc: &mut u8) -> u8 {
    let now = *cc;
    *cc = (*cc + 1) & 0x0f;
    now
}

/// A PSI section with its header and CRC, for one table id.
fn section(table_id: u8, id: u16, body: &[u8]) -> Vec<u8> {
    let length = 5 + body.len() + 4; // header after length, body, CRC
    let mut s = vec![
        table_id,
        0xb0 | ((length >> 8) as u8 & 0x0f),
        length as u8,
        (id >> 8) as u8,
        id as u8,
        0xc1, // version 0, current
        0x00,
        0x00,
    ];
    s.extend_from_slice(body);
    let crc = crc32_mpeg(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

fn psi_packet(out: &mut Vec<u8>, pid: u16, cc: u8, section: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10 | cc, 0x00]);
    out.extend_from_slice(section);
    out.resize(start + PACKET, 0xff);
}

/// A 33-bit PTS or DTS in the PES header's 5-byte layout.
fn timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & 0x1_ffff_ffff;
    [
        (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8 & 0x7f) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8 & 0x7f) << 1) | 1,
    ]
}

/// A PCR: 33-bit base at 90 kHz, 6 reserved bits, 9-bit extension (0).
fn pcr_bytes(base: u64) -> [u8; 6] {
    let base = base & 0x1_ffff_ffff;
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base as u8 & 1) << 7) | 0x7e,
        0x00,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        // CRC-32/MPEG-2 of "123456789".
        assert_eq!(crc32_mpeg(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn every_packet_is_188_bytes_with_sync_and_counters_that_step() {
        let mut w = TsWriter::new();
        let mut out = Vec::new();
        w.write_tables(&mut out);
        for (i, size) in [10usize, 170, 171, 172, 183, 184, 5000].iter().enumerate() {
            let frame = vec![0x65u8; *size];
            w.write_frame(&mut out, &frame, 90_000 + i as u64 * 3000, i == 0);
        }
        assert_eq!(out.len() % PACKET, 0);
        let mut last_cc: Option<u8> = None;
        let mut payload = Vec::new();
        for packet in out.chunks(PACKET) {
            assert_eq!(packet[0], 0x47);
            let pid = (u16::from(packet[1] & 0x1f) << 8) | u16::from(packet[2]);
            if pid != PID_VIDEO {
                continue;
            }
            let cc = packet[3] & 0x0f;
            if let Some(prev) = last_cc {
                assert_eq!(cc, (prev + 1) & 0x0f);
            }
            last_cc = Some(cc);
            let body = if packet[3] & 0x20 != 0 {
                &packet[5 + packet[4] as usize..]
            } else {
                &packet[4..]
            };
            payload.extend_from_slice(body);
        }
        // The video PID carries exactly the PES packets: header + AUD + frame, 7 times.
        let frames: usize = [10usize, 170, 171, 172, 183, 184, 5000].iter().sum();
        assert_eq!(payload.len(), frames + 7 * (14 + AUD.len()));
    }

    #[test]
    fn timestamps_round_trip_through_the_pes_layout() {
        let ts = 0x1_2345_6789u64;
        let b = timestamp(0b0010, ts);
        let back = (u64::from(b[0] >> 1) & 0x07) << 30
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1);
        assert_eq!(back, ts);
        assert_eq!(b[0] >> 4, 0b0010);
    }
}
