//! Just enough H.264 for packaging: NAL units out of Annex B, and the picture size and
//! chroma format from a sequence parameter set.

/// NAL unit types that matter here.
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// The NAL units of an Annex B access unit (start codes of 3 or 4 bytes), without their
/// start codes. Empty units are skipped.
pub fn nal_units(annex_b: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 2 < annex_b.len() {
        if annex_b[i] == 0 && annex_b[i + 1] == 0 && annex_b[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (n, &(_, body)) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(annex_b.len(), |&(code, _)| code);
        // A 4-byte start code's leading zero belongs to it, not to the unit before.
        while end > body && annex_b[end - 1] == 0 {
            end -= 1;
        }
        if end > body {
            units.push(&annex_b[body..end]);
        }
    }
    units
}

pub fn nal_type(unit: &[u8]) -> u8 {
    unit.first().map_or(0, |b| b & 0x1f)
}

/// What the packager needs from a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    pub constraints: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    pub width: u32,
    pub height: u32,
}

/// Reads bits of an RBSP (emulation prevention bytes already removed).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    /// Unsigned exp-Golomb; longer than 31 leading zeros is not a valid SPS.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// The unit's payload with emulation prevention bytes (00 00 03) removed.
fn rbsp(unit: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(unit.len());
    let mut zeros = 0;
    for &b in unit {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Parses an SPS NAL unit (with its header byte). `None` when it is cut short or invalid.
pub fn parse_sps(unit: &[u8]) -> Option<SpsInfo> {
    if nal_type(unit) != NAL_SPS || unit.len() < 4 {
        return None;
    }
    let data = rbsp(&unit[1..]);
    let mut r = Bits {
        data: &data,
        pos: 0,
    };
    let profile_idc = r.bits(8)? as u8;
    let constraints = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    r.ue()?; // seq_parameter_set_id
    let (mut chroma_format_idc, mut bit_depth_luma, mut bit_depth_chroma) = (1, 8, 8);
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        bit_depth_luma = 8 + r.ue()?.min(8);
        bit_depth_chroma = 8 + r.ue()?.min(8);
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
            r.bit()?;
            r.se()?;
            r.se()?;
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
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut left, mut right, mut top, mut bottom) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? == 1 {
        left = r.ue()?.into();
        right = r.ue()?.into();
        top = r.ue()?.into();
        bottom = r.ue()?.into();
    }
    let (unit_x, unit_y) = match chroma_format_idc {
        0 => (1, 2 - frame_mbs_only),
        1 => (2, 2 * (2 - frame_mbs_only)),
        2 => (2, 2 - frame_mbs_only),
        _ => (1, 2 - frame_mbs_only),
    };
    let width = (width_mbs * 16).checked_sub((left + right) * unit_x)?;
    let height = ((2 - frame_mbs_only) * height_units * 16).checked_sub((top + bottom) * unit_y)?;
    if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
        return None;
    }
    Some(SpsInfo {
        profile_idc,
        constraints,
        level_idc,
        chroma_format_idc,
        bit_depth_luma,
        bit_depth_chroma,
        width: width as u32,
        height: height as u32,
    })
}

fn skip_scaling_list(r: &mut Bits<'_>, size: usize) -> Option<()> {
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
pub(crate) use tests::fixture_sps;

#[cfg(test)]
mod tests {
    use super::*;

    /// An SPS written bit by bit, as an encoder would: baseline, 1280x720 (80x45 macroblocks,
    /// no cropping needed).
    fn sps_720p() -> Vec<u8> {
        // Written by hand: profile 66, constraints 0xC0, level 31, then
        // ue(0) sps id, ue(0) log2_max_frame_num-4, ue(2) poc type 2, ue(1) ref frames,
        // gaps 0, ue(79) width-1, ue(44) height-1, frame_mbs_only 1, direct_8x8 1, crop 0,
        // vui 0, stop bit.
        let mut bits = String::new();
        let ue = |v: u32| {
            let n = v + 1;
            let len = 32 - n.leading_zeros();
            format!(
                "{}{:0width$b}",
                "0".repeat(len as usize - 1),
                n,
                width = len as usize
            )
        };
        bits += &ue(0);
        bits += &ue(0);
        bits += &ue(2);
        bits += &ue(1);
        bits += "0";
        bits += &ue(79);
        bits += &ue(44);
        bits += "1";
        bits += "1";
        bits += "0";
        bits += "0";
        bits += "1";
        while bits.len() % 8 != 0 {
            bits += "0";
        }
        let mut out = vec![0x67, 66, 0xC0, 31];
        for chunk in bits.as_bytes().chunks(8) {
            let s = std::str::from_utf8(chunk).unwrap();
            out.push(u8::from_str_radix(s, 2).unwrap());
        }
        out
    }

    #[test]
    fn an_sps_gives_the_picture_size() {
        let info = parse_sps(&sps_720p()).unwrap();
        assert_eq!((info.width, info.height), (1280, 720));
        assert_eq!((info.profile_idc, info.level_idc), (66, 31));
    }

    #[test]
    fn units_are_split_on_three_and_four_byte_start_codes() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let units = nal_units(&au);
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
    }

    #[test]
    fn a_cut_or_garbage_sps_is_refused() {
        let sps = sps_720p();
        for len in 0..sps.len() - 1 {
            let _ = parse_sps(&sps[..len]);
        }
        assert_eq!(parse_sps(&[0x67, 0, 0, 0]), None);
        assert_eq!(parse_sps(&[0x68, 66, 0, 31, 0xff]), None);
    }

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        assert_eq!(
            rbsp(&[0x00, 0x00, 0x03, 0x01, 0xff]),
            vec![0x00, 0x00, 0x01, 0xff]
        );
    }

    pub(crate) fn fixture_sps() -> Vec<u8> {
        sps_720p()
    }
}
