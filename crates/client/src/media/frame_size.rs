//! The picture size a received keyframe declares: from a VP8 key frame's header (RFC 6386
//! section 9.1) or from the sequence parameter set in an H.264 access unit (ITU-T H.264
//! section 7.3.2.1.1). A receiver that reports these sizes shows the sender's real encoder
//! output arrived intact enough to start decoding.

/// The width and height in a VP8 key frame: a 3-byte frame tag whose bit 0 is 0 for a key
/// frame, the start code `9d 01 2a`, then two little-endian 16-bit fields whose low 14 bits
/// are the width and height (the top 2 bits are a scaling hint).
pub fn vp8_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((u32::from(width), u32::from(height)))
}

/// The cropped picture size from the first readable SPS in an Annex B access unit (the
/// parser is confab-hls's, which also writes the SPS into HLS init segments).
pub fn h264_size(access_unit: &[u8]) -> Option<(u32, u32)> {
    confab_hls::nal_units(access_unit)
        .into_iter()
        .find_map(confab_hls::parse_sps)
        .map(|sps| (sps.width, sps.height))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vp8_header(tag: [u8; 3], width: u16, height: u16) -> Vec<u8> {
        let mut frame = tag.to_vec();
        frame.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        frame.extend_from_slice(&width.to_le_bytes());
        frame.extend_from_slice(&height.to_le_bytes());
        frame.extend_from_slice(&[0; 20]);
        frame
    }

    #[test]
    fn vp8_key_frames_give_their_size() {
        // A key frame tag (bit 0 clear, version 0, show_frame set).
        assert_eq!(
            vp8_size(&vp8_header([0x10, 0x02, 0x00], 640, 360)),
            Some((640, 360))
        );
        assert_eq!(
            vp8_size(&vp8_header([0x50, 0x21, 0x01], 1280, 720)),
            Some((1280, 720))
        );
        // The top two bits of each field are a scaling hint, not size.
        let scaled = vp8_header([0x10, 0x02, 0x00], 320 | 0x4000, 180 | 0xc000);
        assert_eq!(vp8_size(&scaled), Some((320, 180)));
        // 14 bits at most.
        assert_eq!(
            vp8_size(&vp8_header([0x10, 0, 0], 0x3fff, 1)),
            Some((16383, 1))
        );
    }

    #[test]
    fn vp8_inter_frames_and_junk_give_nothing() {
        // Bit 0 set: an inter frame, whose header has no size.
        assert_eq!(vp8_size(&vp8_header([0x11, 0x02, 0x00], 640, 360)), None);
        let mut wrong_code = vp8_header([0x10, 0x02, 0x00], 640, 360);
        wrong_code[4] = 0x02;
        assert_eq!(vp8_size(&wrong_code), None);
        assert_eq!(
            vp8_size(&vp8_header([0x10, 0x02, 0x00], 640, 360)[..9]),
            None
        );
        assert_eq!(vp8_size(&[]), None);
    }

    #[test]
    fn h264_size_of_a_hand_made_high_profile_sps() {
        // High profile (100), 1920x1080: 120x68 macroblocks, 8 rows cropped at the bottom.
        // Built bit by bit so the chroma/bit-depth branch is covered too.
        let mut bits = String::new();
        let ue = |v: u32| {
            let code = v + 1;
            let len = 32 - code.leading_zeros();
            format!(
                "{}{:0width$b}",
                "0".repeat(len as usize - 1),
                code,
                width = len as usize
            )
        };
        bits += &format!("{:08b}{:08b}{:08b}", 100, 0, 40);
        bits += &ue(0); // sps id
        bits += &ue(1); // chroma_format_idc 4:2:0
        bits += &ue(0);
        bits += &ue(0);
        bits += "0"; // qpprime
        bits += "0"; // no scaling matrix
        bits += &ue(0); // log2_max_frame_num_minus4
        bits += &ue(2); // poc type 2
        bits += &ue(4); // max_num_ref_frames
        bits += "0";
        bits += &ue(119);
        bits += &ue(67);
        bits += "1"; // frame_mbs_only
        bits += "1"; // direct_8x8
        bits += "1"; // cropping
        bits += &ue(0);
        bits += &ue(0);
        bits += &ue(0);
        bits += &ue(4);
        bits += "0"; // no VUI
        bits += "1"; // the stop bit
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let mut au = vec![0, 0, 0, 1, 0x67];
        au.extend(
            bits.as_bytes()
                .chunks(8)
                .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap()),
        );
        au.extend_from_slice(&[0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        assert_eq!(h264_size(&au), Some((1920, 1080)));
    }

    #[test]
    fn h264_without_an_sps_or_with_a_broken_one_gives_nothing() {
        assert_eq!(h264_size(&[0, 0, 0, 1, 0x65, 0x88, 0x84]), None);
        assert_eq!(h264_size(&[0, 0, 0, 1, 0x67, 0x42]), None);
        assert_eq!(h264_size(&[0, 0, 0, 1, 0x67, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(h264_size(&[]), None);
    }
}
