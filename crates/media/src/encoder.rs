//! H.264 encoding of RGBA (camera) and BGRX (screen) frames with OpenH264.

use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::formats::{BgraSliceU8, RgbaSliceU8, YUVBuffer};
use openh264::OpenH264API;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error(
        "a frame of {width}x{height} cannot be encoded: both sides must be at least 16 pixels"
    )]
    TooSmall { width: u32, height: u32 },
    #[error("the frame has {got} bytes, not the {want} that {width}x{height} RGBA needs")]
    WrongLength {
        got: usize,
        want: usize,
        width: u32,
        height: u32,
    },
    #[error("the H.264 encoder failed: {0}")]
    Encoder(String),
}

/// One encoded frame: Annex B NAL units (with SPS and PPS before each keyframe).
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub annex_b: Vec<u8>,
    pub keyframe: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct EncoderSettings {
    pub fps: u32,
    pub bitrate_bps: u32,
    /// A keyframe at least this often (frames), so segments can start on one.
    pub keyframe_interval: u32,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            fps: 30,
            bitrate_bps: 2_500_000,
            keyframe_interval: 30,
        }
    }
}

pub struct H264Encoder {
    encoder: Encoder,
    /// The last SPS and PPS NAL units (with start codes): a keyframe that comes without them
    /// gets them, so a receiver can start decoding at any keyframe.
    parameter_sets: Vec<u8>,
    yuv: YUVBuffer,
    width: u32,
    height: u32,
}

/// The order of a pixel's 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelOrder {
    Rgba,
    /// As an X server on a little-endian machine hands out pixels (the 4th byte unused).
    Bgrx,
}

impl H264Encoder {
    /// An encoder for camera frames of `width` x `height`; odd sides lose their last column
    /// or row.
    pub fn new(width: u32, height: u32, settings: EncoderSettings) -> Result<Self, EncodeError> {
        Self::with_usage(width, height, settings, UsageType::CameraVideoRealTime)
    }

    /// An encoder tuned for screen content (sharp text and edges, little motion).
    pub fn for_screen(
        width: u32,
        height: u32,
        settings: EncoderSettings,
    ) -> Result<Self, EncodeError> {
        Self::with_usage(width, height, settings, UsageType::ScreenContentRealTime)
    }

    fn with_usage(
        width: u32,
        height: u32,
        settings: EncoderSettings,
        usage: UsageType,
    ) -> Result<Self, EncodeError> {
        if width < 16 || height < 16 {
            return Err(EncodeError::TooSmall { width, height });
        }
        let (width, height) = (width & !1, height & !1);
        let config = EncoderConfig::new()
            .usage_type(usage)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(settings.bitrate_bps.max(100_000)))
            .max_frame_rate(FrameRate::from_hz(settings.fps.clamp(1, 120) as f32))
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                settings.keyframe_interval.max(1),
            ))
            // Every frame is kept: a skipped frame would leave a hole in the timeline.
            .skip_frames(false);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| EncodeError::Encoder(e.to_string()))?;
        Ok(Self {
            encoder,
            parameter_sets: Vec::new(),
            yuv: YUVBuffer::new(width as usize, height as usize),
            width,
            height,
        })
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Encodes one RGBA frame of `source_width` pixels per row (the encoder's size or one
    /// more). `None` when the encoder produced nothing for it.
    pub fn encode_rgba(
        &mut self,
        rgba: &[u8],
        source_width: u32,
        source_height: u32,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError> {
        self.encode(
            rgba,
            PixelOrder::Rgba,
            source_width,
            source_height,
            force_keyframe,
        )
    }

    /// Encodes one frame of 4-byte pixels in `order`, as [`Self::encode_rgba`] does.
    pub fn encode(
        &mut self,
        rgba: &[u8],
        order: PixelOrder,
        source_width: u32,
        source_height: u32,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError> {
        let want = source_width as usize * source_height as usize * 4;
        if rgba.len() != want
            || source_width & !1 != self.width
            || source_height & !1 != self.height
        {
            return Err(EncodeError::WrongLength {
                got: rgba.len(),
                want,
                width: self.width,
                height: self.height,
            });
        }
        let size = (self.width as usize, self.height as usize);
        if source_width == self.width {
            let rows = &rgba[..self.width as usize * self.height as usize * 4];
            match order {
                PixelOrder::Rgba => self.yuv.read_rgba8(RgbaSliceU8::new(rows, size)),
                PixelOrder::Bgrx => self.yuv.read_bgra8(BgraSliceU8::new(rows, size)),
            }
        } else {
            // Odd width: copy the even part of each row.
            let mut even = Vec::with_capacity(self.width as usize * self.height as usize * 4);
            for row in rgba
                .chunks_exact(source_width as usize * 4)
                .take(self.height as usize)
            {
                even.extend_from_slice(&row[..self.width as usize * 4]);
            }
            match order {
                PixelOrder::Rgba => self.yuv.read_rgba8(RgbaSliceU8::new(&even, size)),
                PixelOrder::Bgrx => self.yuv.read_bgra8(BgraSliceU8::new(&even, size)),
            }
        }
        if force_keyframe {
            self.encoder.force_intra_frame();
        }
        let stream = self
            .encoder
            .encode(&self.yuv)
            .map_err(|e| EncodeError::Encoder(e.to_string()))?;
        let keyframe = matches!(stream.frame_type(), FrameType::IDR | FrameType::I);
        if matches!(stream.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let mut annex_b = stream.to_vec();
        if keyframe {
            let sets = parameter_sets(&annex_b);
            if !sets.is_empty() {
                self.parameter_sets = sets;
            } else if !self.parameter_sets.is_empty() {
                // A forced IDR came without its SPS and PPS (seen from OpenH264): a receiver
                // joining here (a new subscriber, after a loss) could not decode it.
                let mut whole = self.parameter_sets.clone();
                whole.extend_from_slice(&annex_b);
                annex_b = whole;
            }
        }
        Ok((!annex_b.is_empty()).then_some(EncodedFrame { annex_b, keyframe }))
    }
}

/// The SPS and PPS NAL units of an Annex B access unit, each with a 4-byte start code.
fn parameter_sets(annex_b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nal_units(annex_b) {
        if matches!(nal.first().map(|b| b & 0x1f), Some(7) | Some(8)) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
    out
}

/// The NAL units of an Annex B stream, without their start codes.
fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| {
            let mut end = starts.get(n + 1).map_or(stream.len(), |next| next - 3);
            // A 4-byte start code's leading zero belongs to it, not to this unit.
            while end > start && stream[end - 1] == 0 && starts.get(n + 1).is_some() {
                end -= 1;
            }
            &stream[start..end]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_devices::fake::TestPattern;

    #[test]
    fn the_test_pattern_encodes_with_a_keyframe_first_and_every_interval() {
        let mut pattern = TestPattern::new(320, 180);
        let settings = EncoderSettings {
            keyframe_interval: 10,
            ..EncoderSettings::default()
        };
        let mut encoder = H264Encoder::new(320, 180, settings).unwrap();
        let mut keyframes = Vec::new();
        for i in 0..25 {
            let frame = pattern.next_frame(1_000 + i * 33);
            let out = encoder
                .encode_rgba(&frame.rgba, 320, 180, false)
                .unwrap()
                .unwrap();
            // Annex B: starts with a start code.
            assert!(out.annex_b.starts_with(&[0, 0, 0, 1]) || out.annex_b.starts_with(&[0, 0, 1]));
            if out.keyframe {
                keyframes.push(i);
            }
        }
        assert_eq!(keyframes.first(), Some(&0));
        assert!(keyframes.len() >= 3, "{keyframes:?}");
    }

    #[test]
    fn every_keyframe_carries_its_sps_and_pps_even_when_forced() {
        let mut pattern = TestPattern::new(320, 180);
        let mut encoder = H264Encoder::new(320, 180, EncoderSettings::default()).unwrap();
        for i in 0..40u64 {
            let frame = pattern.next_frame(1_000 + i * 33);
            // Forced keyframes now and then, as receivers' requests make them.
            let force = i % 7 == 3;
            let out = encoder
                .encode_rgba(&frame.rgba, 320, 180, force)
                .unwrap()
                .unwrap();
            if out.keyframe {
                let types: Vec<u8> = nal_units(&out.annex_b)
                    .iter()
                    .map(|n| n[0] & 0x1f)
                    .collect();
                assert!(
                    types.contains(&7) && types.contains(&8),
                    "frame {i}: {types:?}"
                );
            }
        }
    }

    #[test]
    fn nal_units_split_on_3_and_4_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let units = nal_units(&stream);
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
        assert!(nal_units(&[]).is_empty());
        assert!(parameter_sets(&[0, 0, 1, 0x65, 9]).is_empty());
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        assert!(matches!(
            H264Encoder::new(8, 8, EncoderSettings::default()),
            Err(EncodeError::TooSmall { .. })
        ));
        let mut encoder = H264Encoder::new(64, 48, EncoderSettings::default()).unwrap();
        assert!(matches!(
            encoder.encode_rgba(&[0; 10], 64, 48, false),
            Err(EncodeError::WrongLength { .. })
        ));
    }
}
