//! The fake devices' signals: a test-pattern camera and a tone microphone.
//!
//! The pattern has colour bars (for checking colours end to end), a square that moves one
//! step per frame (for seeing motion), the frame number, and the wall-clock time in
//! milliseconds at render (for measuring latency from a frame read back elsewhere).

/// SMPTE-like bars, left to right: white, yellow, cyan, green, magenta, red, blue.
pub const BARS: [[u8; 3]; 7] = [
    [235, 235, 235],
    [235, 235, 16],
    [16, 235, 235],
    [16, 235, 16],
    [235, 16, 235],
    [235, 16, 16],
    [16, 16, 235],
];

const BAND: [u8; 4] = [40, 40, 48, 255];
const SQUARE: [u8; 4] = [250, 250, 250, 255];

/// 3x5 digits, one row per 3 bits (most significant bit on the left).
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b010, 0b010, 0b010],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

/// One rendered frame, RGBA.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub sequence: u64,
    /// Milliseconds since the Unix epoch when it was rendered (also drawn in the frame).
    pub captured_at_ms: u64,
    pub rgba: Vec<u8>,
}

/// Renders the test pattern at one size.
pub struct TestPattern {
    width: u32,
    height: u32,
    bars_row: Vec<u8>,
    band_row: Vec<u8>,
    sequence: u64,
}

impl TestPattern {
    /// Sizes are clamped to at least 64x48 and at most 3840x2160.
    pub fn new(width: u32, height: u32) -> Self {
        let width = width.clamp(64, 3840);
        let height = height.clamp(48, 2160);
        let mut bars_row = Vec::with_capacity(width as usize * 4);
        for x in 0..width {
            let [r, g, b] = BARS[(x as usize * BARS.len()) / width as usize];
            bars_row.extend_from_slice(&[r, g, b, 255]);
        }
        let band_row = BAND.repeat(width as usize);
        Self {
            width,
            height,
            bars_row,
            band_row,
            sequence: 0,
        }
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Renders the next frame into `frame` (reusing its buffer).
    pub fn render_into(&mut self, frame: &mut Frame, now_ms: u64) {
        let (w, h) = (self.width as usize, self.height as usize);
        let stride = w * 4;
        frame.rgba.resize(stride * h, 0);
        let bars_end = h * 2 / 3;
        for row in frame.rgba.chunks_exact_mut(stride).take(bars_end) {
            row.copy_from_slice(&self.bars_row);
        }
        for row in frame.rgba.chunks_exact_mut(stride).skip(bars_end) {
            row.copy_from_slice(&self.band_row);
        }
        // The moving square, in the band.
        let side = ((h - bars_end) / 2).max(4);
        let travel = w.saturating_sub(side).max(1);
        let step = (w / 120).max(2);
        let x0 = (self.sequence as usize * step) % travel;
        let y0 = bars_end + (h - bars_end - side) / 2;
        for y in y0..(y0 + side).min(h) {
            let start = y * stride + x0 * 4;
            for px in frame.rgba[start..start + side * 4].chunks_exact_mut(4) {
                px.copy_from_slice(&SQUARE);
            }
        }
        // Frame number and time, top left, black on white.
        let scale = (h / 90).max(2);
        draw_number(&mut frame.rgba, w, scale, scale, self.sequence);
        draw_number(&mut frame.rgba, w, scale, scale * 8, now_ms);
        draw_timestamp_code(&mut frame.rgba, w, h, now_ms);
        frame.width = self.width;
        frame.height = self.height;
        frame.sequence = self.sequence;
        frame.captured_at_ms = now_ms;
        self.sequence += 1;
    }

    pub fn next_frame(&mut self, now_ms: u64) -> Frame {
        let mut frame = Frame {
            width: 0,
            height: 0,
            sequence: 0,
            captured_at_ms: 0,
            rgba: Vec::new(),
        };
        self.render_into(&mut frame, now_ms);
        frame
    }
}

/// Bits of the render time in the bar code along the bottom edge: 2^44 ms is 557 years.
pub const TIMESTAMP_CODE_BITS: usize = 44;

/// Where the bar code sits: the rows `[top, bottom)` of a frame `height` high, below the
/// moving square. Cell `i` spans columns `[i * width / 44, (i + 1) * width / 44)`.
pub fn timestamp_code_rows(height: usize) -> (usize, usize) {
    let strip = (height / 12).max(4);
    (height - strip + strip / 4, height - strip / 4)
}

/// The render time as a row of white (1) and black (0) cells, most significant bit first.
/// Big cells survive video compression, so a viewer can read the time back from a decoded
/// frame ([`read_timestamp_code`]) and compare it with its own clock.
fn draw_timestamp_code(rgba: &mut [u8], width: usize, height: usize, now_ms: u64) {
    let (top, bottom) = timestamp_code_rows(height);
    for bit in 0..TIMESTAMP_CODE_BITS {
        let on = (now_ms >> (TIMESTAMP_CODE_BITS - 1 - bit)) & 1 == 1;
        let x0 = bit * width / TIMESTAMP_CODE_BITS;
        let x1 = (bit + 1) * width / TIMESTAMP_CODE_BITS;
        let color = if on {
            [255, 255, 255, 255]
        } else {
            [0, 0, 0, 255]
        };
        fill(rgba, width, x0, top, x1 - x0, bottom - top, color);
    }
}

/// Reads the render time back from an RGBA frame (after scaling or lossy coding), sampling
/// the middle of each cell (drawn and read with the same integer edges). `None` when the
/// frame is too small to hold the code.
pub fn read_timestamp_code(rgba: &[u8], width: usize, height: usize) -> Option<u64> {
    if width < TIMESTAMP_CODE_BITS || height < 48 || rgba.len() < width * height * 4 {
        return None;
    }
    let (top, bottom) = timestamp_code_rows(height);
    let y = (top + bottom) / 2;
    let mut value = 0u64;
    for bit in 0..TIMESTAMP_CODE_BITS {
        let x0 = bit * width / TIMESTAMP_CODE_BITS;
        let x1 = (bit + 1) * width / TIMESTAMP_CODE_BITS;
        let x = (x0 + x1) / 2;
        let i = (y * width + x) * 4;
        let luma = (u32::from(rgba[i]) + u32::from(rgba[i + 1]) + u32::from(rgba[i + 2])) / 3;
        value = (value << 1) | u64::from(luma > 128);
    }
    Some(value)
}

fn draw_number(rgba: &mut [u8], width: usize, left: usize, top: usize, value: u64) {
    let text = value.to_string();
    let scale = left.max(1);
    let box_w = (text.len() * 4 + 1) * scale;
    let box_h = 7 * scale;
    let height = rgba.len() / (width * 4);
    fill(rgba, width, left, top, box_w, box_h, [255, 255, 255, 255]);
    for (i, ch) in text.bytes().enumerate() {
        let glyph = DIGITS[(ch - b'0') as usize];
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..3 {
                if bits & (0b100 >> gx) != 0 {
                    let x = left + (1 + i * 4 + gx) * scale;
                    let y = top + (1 + gy) * scale;
                    if x + scale <= width && y + scale <= height {
                        fill(rgba, width, x, y, scale, scale, [0, 0, 0, 255]);
                    }
                }
            }
        }
    }
}

fn fill(rgba: &mut [u8], width: usize, x: usize, y: usize, w: usize, h: usize, color: [u8; 4]) {
    let height = rgba.len() / (width * 4);
    for row in y..(y + h).min(height) {
        let start = row * width * 4 + x.min(width) * 4;
        let end = row * width * 4 + (x + w).min(width) * 4;
        for px in rgba[start..end].chunks_exact_mut(4) {
            px.copy_from_slice(&color);
        }
    }
}

/// Sets the fake microphone's pitch in Hz, per process (tests tell participants apart by it).
pub const FAKE_TONE_HZ_ENV: &str = "CONFAB_FAKE_TONE_HZ";
/// The fake microphone's pitch when `CONFAB_FAKE_TONE_HZ` is not set (or not a pitch).
pub const DEFAULT_FAKE_TONE_HZ: f32 = 440.0;

/// The fake microphone's pitch: `CONFAB_FAKE_TONE_HZ`, or 440 Hz.
pub fn fake_tone_hz() -> f32 {
    parse_fake_tone_hz(std::env::var(FAKE_TONE_HZ_ENV).ok().as_deref())
}

/// A pitch from the variable's value: a number of Hz from 20 to 20,000, else the default.
pub fn parse_fake_tone_hz(value: Option<&str>) -> f32 {
    value
        .and_then(|v| v.trim().parse::<f32>().ok())
        .filter(|hz| (20.0..=20_000.0).contains(hz))
        .unwrap_or(DEFAULT_FAKE_TONE_HZ)
}

/// A sine tone, for the fake microphone and the speaker test.
pub struct Tone {
    step: f32,
    phase: f32,
    amplitude: f32,
}

impl Tone {
    /// `amplitude` is linear (0.25 is about -12 dBFS).
    pub fn new(frequency_hz: f32, sample_rate: u32, amplitude: f32) -> Self {
        Self {
            step: frequency_hz / sample_rate as f32,
            phase: 0.0,
            amplitude,
        }
    }

    /// Fills interleaved samples, the same value on each of `channels`.
    pub fn fill(&mut self, samples: &mut [f32], channels: usize) {
        for frame in samples.chunks_mut(channels.max(1)) {
            let value = (self.phase * std::f32::consts::TAU).sin() * self.amplitude;
            frame.fill(value);
            self.phase = (self.phase + self.step).fract();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixel(frame: &Frame, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * frame.width + x) * 4) as usize;
        frame.rgba[i..i + 4].try_into().unwrap()
    }

    #[test]
    fn the_render_time_reads_back_from_the_bar_code_at_any_size() {
        for (w, h) in [(1280, 720), (320, 180), (64, 48)] {
            let mut pattern = TestPattern::new(w, h);
            let now = 1_795_845_117_369;
            let frame = pattern.next_frame(now);
            assert_eq!(
                read_timestamp_code(&frame.rgba, w as usize, h as usize),
                Some(now),
                "{w}x{h}"
            );
        }
        assert_eq!(read_timestamp_code(&[0; 16], 2, 2), None);
    }

    #[test]
    fn the_pattern_has_bars_a_moving_square_and_a_counter() {
        let mut pattern = TestPattern::new(1280, 720);
        let first = pattern.next_frame(1_000);
        let second = pattern.next_frame(1_033);
        assert_eq!(
            (first.width, first.height, first.rgba.len()),
            (1280, 720, 1280 * 720 * 4)
        );
        // Each bar's colour, in the middle of the bars area (below the counter).
        for (i, [r, g, b]) in BARS.iter().enumerate() {
            let x = (i as u32 * 1280 + 640) / 7;
            assert_eq!(pixel(&first, x, 400), [*r, *g, *b, 255], "bar {i}");
        }
        assert_eq!((first.sequence, second.sequence), (0, 1));
        // The square moved: some band pixel changed between frames.
        let band_y = 720 * 5 / 6;
        let changed = (0..1280)
            .filter(|&x| pixel(&first, x, band_y) != pixel(&second, x, band_y))
            .count();
        assert!(changed > 0);
        // The counter's box differs between frames 0 and 1; the rest of the bars do not.
        assert_ne!(first.rgba[..1280 * 4 * 60], second.rgba[..1280 * 4 * 60]);
    }

    #[test]
    fn any_size_renders_without_panicking() {
        for (w, h) in [
            (1, 1),
            (64, 48),
            (333, 101),
            (3840, 2160),
            (u32::MAX, u32::MAX),
        ] {
            let mut pattern = TestPattern::new(w, h);
            let frame = pattern.next_frame(u64::MAX);
            assert_eq!(frame.rgba.len(), (frame.width * frame.height * 4) as usize);
        }
    }

    #[test]
    fn the_fake_tone_pitch_comes_from_the_variable_or_is_440() {
        assert_eq!(parse_fake_tone_hz(None), 440.0);
        assert_eq!(parse_fake_tone_hz(Some("660")), 660.0);
        assert_eq!(parse_fake_tone_hz(Some(" 523.25 ")), 523.25);
        for bad in ["", "loud", "-5", "0", "NaN", "inf", "99999"] {
            assert_eq!(parse_fake_tone_hz(Some(bad)), 440.0, "{bad:?}");
        }
    }

    #[test]
    fn the_tone_is_a_sine_at_its_amplitude() {
        let mut tone = Tone::new(1000.0, 48_000, 0.25);
        let mut samples = vec![0.0; 480 * 2];
        tone.fill(&mut samples, 2);
        let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.25).abs() < 0.01, "{peak}");
        assert_eq!(samples[0], samples[1], "the same value on both channels");
        // 1 kHz at 48 kHz: a full period every 48 frames.
        assert!((samples[2 * 48] - samples[0]).abs() < 1e-3);
    }
}
