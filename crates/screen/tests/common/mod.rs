//! What the capture tests read from a captured frame of the test pattern (BGRX).

use confab_devices::fake::read_timestamp_code;

/// The test pattern's first bar is white (235) and its last blue.
pub fn assert_pattern(bgrx: &[u8], width: u32, height: u32) {
    let row = (height / 4) as usize * width as usize * 4;
    let first = &bgrx[row + 8..row + 11];
    let last = row + (width as usize - 8) * 4;
    assert!(
        first.iter().all(|c| (225..=245).contains(c)),
        "first bar white: {first:?}"
    );
    let last = &bgrx[last..last + 3];
    assert!(
        last[0] > 200 && last[1] < 40 && last[2] < 40,
        "last bar blue (BGR): {last:?}"
    );
}

/// The wall-clock time code drawn along the pattern's bottom edge.
pub fn bgrx_time_code(bgrx: &[u8], width: u32, height: u32) -> Option<u64> {
    let mut rgba = bgrx.to_vec();
    for p in rgba.chunks_exact_mut(4) {
        p.swap(0, 2);
    }
    read_timestamp_code(&rgba, width as usize, height as usize)
}
