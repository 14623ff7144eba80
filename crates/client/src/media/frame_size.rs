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

/// The cropped picture size from the first SPS in an Annex B access unit.
pub fn h264_size(access_unit: &[u8]) -> Option<(u32, u32)> {
    nal_units(access_unit)
        .find(|nal| nal.first().is_some_and(|h| h & 0x1f == 7))
        .and_then(|sps| sps_size(&sps[1..]))
}

/// The NAL units of an Annex B stream (without their start codes).
fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            // The next unit's start code, with the zero before it when it is 4 bytes long.
            let code = s - 3;
            if code > 0 && stream[code - 1] == 0 {
                code - 1
            } else {
                code
            }
        })
        .chain(std::iter::once(stream.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|(s, e)| s < e)
        .map(move |(s, e)| &stream[s..e])
}

/// Reads bits MSB first from an RBSP (emulation prevention bytes removed).
struct Bits {
    bytes: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn new(payload: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(payload.len());
        let mut zeros = 0;
        for &b in payload {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            bytes.push(b);
        }
        Self { bytes, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | self.bit()?))
    }

    /// Exp-Golomb unsigned (ue(v)); values past 2^31 are refused as corrupt.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices.
const HIGH_PROFILES: [u32; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

fn sps_size(payload: &[u8]) -> Option<(u32, u32)> {
    let mut r = Bits::new(payload);
    let profile_idc = r.bits(8)?;
    r.bits(16)?; // constraint flags, level_idc
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()? == 1;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_map_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        left = r.ue()?;
        right = r.ue()?;
        top = r.ue()?;
        bottom = r.ue()?;
    }
    // Crop offsets count chroma samples (section 7.4.2.1.1).
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let field_factor = 2 - frame_mbs_only;
    let (crop_x, crop_y) = match chroma_array_type {
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let width = width_mbs.checked_mul(16)?;
    let height = height_map_units.checked_mul(16 * field_factor)?;
    let width = width.checked_sub(crop_x * left.checked_add(right)?)?;
    let height = height.checked_sub(crop_y * top.checked_add(bottom)?)?;
    Some((width, height))
}

fn skip_scaling_list(r: &mut Bits, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
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

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        let mut r = Bits::new(&[0x00, 0x00, 0x03, 0x01, 0xff]);
        assert_eq!(r.bits(24), Some(1));
        assert_eq!(r.bits(8), Some(0xff));
    }
}
