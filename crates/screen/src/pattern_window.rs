//! A window that draws the fake camera's test pattern (colour bars, a moving square, the
//! wall-clock time code along the bottom) at 30 fps: something known to share in tests and
//! benchmarks, whose time code tells how late a shared frame is painted elsewhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use confab_devices::fake::TestPattern;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask, ImageFormat, PropMode,
    WindowClass,
};
use x11rb::protocol::Event;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::COPY_DEPTH_FROM_PARENT;

/// A pattern window drawing on a thread of its own; dropping it closes the window.
pub struct PatternWindow {
    /// The X window id.
    pub window: u32,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PatternWindow {
    /// Opens a `width` x `height` window titled `title` and draws into it until dropped (or
    /// until `lifetime` passes).
    pub fn open(
        title: &str,
        width: u16,
        height: u16,
        lifetime: Duration,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let (conn, screen_num) = x11rb::connect(None)?;
        let screen = conn
            .setup()
            .roots
            .get(screen_num)
            .cloned()
            .ok_or("the display has no such screen")?;
        if screen.root_depth != 24 && screen.root_depth != 32 {
            return Err(format!(
                "a {}-bit screen: the pattern is drawn as 32-bit pixels",
                screen.root_depth
            )
            .into());
        }
        let window = conn.generate_id()?;
        conn.create_window(
            COPY_DEPTH_FROM_PARENT,
            window,
            screen.root,
            0,
            0,
            width,
            height,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new()
                .background_pixel(screen.black_pixel)
                .event_mask(EventMask::STRUCTURE_NOTIFY),
        )?;
        conn.change_property8(
            PropMode::REPLACE,
            window,
            AtomEnum::WM_NAME,
            AtomEnum::STRING,
            title.as_bytes(),
        )?;
        let gc = conn.generate_id()?;
        conn.create_gc(gc, window, &CreateGCAux::new())?;
        conn.map_window(window)?;
        conn.flush()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let depth = screen.root_depth;
        let thread = std::thread::Builder::new()
            .name("pattern-window".into())
            .spawn(move || {
                let drawing = Drawing {
                    conn: &conn,
                    window,
                    gc,
                    depth,
                    width,
                    height,
                };
                if let Err(e) = drawing.run(&thread_stop, Instant::now() + lifetime) {
                    tracing::debug!(error = %e, "the pattern window stopped drawing");
                }
                // Closing the connection destroys the window.
            })?;
        Ok(Self {
            window,
            stop,
            thread: Some(thread),
        })
    }

    /// The source id confab-screen lists this window under.
    pub fn source_id(&self) -> String {
        format!("x11:window:{:#x}", self.window)
    }

    /// Waits until the window is gone (it is dropped, or its lifetime passed).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PatternWindow {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Drawing<'a, C: Connection> {
    conn: &'a C,
    window: u32,
    gc: u32,
    depth: u8,
    width: u16,
    height: u16,
}

impl<C: Connection> Drawing<'_, C> {
    fn run(&self, stop: &AtomicBool, until: Instant) -> Result<(), Box<dyn std::error::Error>> {
        let (w, h) = (u32::from(self.width), u32::from(self.height));
        let mut pattern = TestPattern::new(w, h);
        let mut bgrx = vec![0u8; (w * h * 4) as usize];
        // Strips small enough for any server's request size limit.
        let rows_per_put = ((200_000 / (w * 4)).max(1)) as usize;
        let period = Duration::from_millis(33);
        let mut next = Instant::now();
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            while let Some(event) = self.conn.poll_for_event()? {
                if let Event::DestroyNotify(_) = event {
                    return Ok(());
                }
            }
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
            let frame = pattern.next_frame(now_ms);
            for (out, rgba) in bgrx.chunks_exact_mut(4).zip(frame.rgba.chunks_exact(4)) {
                out.copy_from_slice(&[rgba[2], rgba[1], rgba[0], 255]);
            }
            let stride = (w * 4) as usize;
            for (i, strip) in bgrx.chunks(stride * rows_per_put).enumerate() {
                let rows = (strip.len() / stride) as u16;
                self.conn.put_image(
                    ImageFormat::Z_PIXMAP,
                    self.window,
                    self.gc,
                    self.width,
                    rows,
                    0,
                    (i * rows_per_put) as i16,
                    0,
                    self.depth,
                    strip,
                )?;
            }
            self.conn.flush()?;
            next += period;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
        Ok(())
    }
}
