//! Capture through the X server: the whole screen from the root window, one window from the
//! pixmap the Composite extension keeps for it (so windows over it do not show), pixels
//! written by the server into shared memory (MIT-SHM), or sent over the socket where the
//! server has no MIT-SHM.

use x11rb::connection::{Connection, RequestConnection};
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::composite::{self, ConnectionExt as _, Redirect};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, Drawable, ImageFormat, MapState, Window,
};
use x11rb::protocol::ErrorKind;
use x11rb::rust_connection::RustConnection;

use crate::shm::Segment;
use crate::{ShareSource, SourceKind};

/// Why a grab or a listing failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum X11Error {
    #[error("the X server could not be reached: {0}")]
    Connect(String),
    /// The window is gone (closed, or destroyed while we asked).
    #[error("the window is gone")]
    Gone,
    /// Not shown now (minimised, or on its way out): nothing to grab this time.
    #[error("the window is not shown")]
    Hidden,
    #[error("the display uses {0}-bit pixels; capture reads 24- and 32-bit ones")]
    Depth(u8),
    #[error("the X server refused: {0}")]
    Protocol(String),
}

impl From<ConnectionError> for X11Error {
    fn from(e: ConnectionError) -> Self {
        X11Error::Protocol(e.to_string())
    }
}

impl From<ReplyError> for X11Error {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::X11Error(x)
                if matches!(
                    x.error_kind,
                    ErrorKind::Window | ErrorKind::Drawable | ErrorKind::Pixmap | ErrorKind::Match
                ) =>
            {
                X11Error::Gone
            }
            other => X11Error::Protocol(other.to_string()),
        }
    }
}

impl From<ReplyOrIdError> for X11Error {
    fn from(e: ReplyOrIdError) -> Self {
        match e {
            ReplyOrIdError::X11Error(x) => ReplyError::X11Error(x).into(),
            other => X11Error::Protocol(other.to_string()),
        }
    }
}

/// What to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Screen,
    Window(Window),
}

/// Parses a source id made by [`X11::sources`]: `x11:screen` or `x11:window:<id in hex>`.
pub(crate) fn parse_target(id: &str) -> Option<Target> {
    let rest = id.strip_prefix("x11:")?;
    if rest == "screen" {
        return Some(Target::Screen);
    }
    let hex = rest.strip_prefix("window:")?;
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    u32::from_str_radix(hex, 16)
        .ok()
        .filter(|w| *w != 0)
        .map(Target::Window)
}

struct Atoms {
    net_wm_name: Atom,
    utf8_string: Atom,
    net_client_list: Atom,
}

/// One connection to the X server.
pub(crate) struct X11 {
    conn: RustConnection,
    root: Window,
    screen_size: (u16, u16),
    shm: bool,
    composite: bool,
    atoms: Atoms,
}

impl X11 {
    pub(crate) fn connect() -> Result<Self, X11Error> {
        let (conn, screen_num) =
            x11rb::connect(None).map_err(|e| X11Error::Connect(e.to_string()))?;
        let screen = conn
            .setup()
            .roots
            .get(screen_num)
            .ok_or_else(|| X11Error::Connect("the display has no such screen".into()))?;
        let (root, screen_size) = (
            screen.root,
            (screen.width_in_pixels, screen.height_in_pixels),
        );
        let shm = conn
            .extension_information(shm::X11_EXTENSION_NAME)?
            .is_some()
            && conn.shm_query_version()?.reply().is_ok();
        let composite = conn
            .extension_information(composite::X11_EXTENSION_NAME)?
            .is_some()
            && conn
                .composite_query_version(0, 4)?
                .reply()
                .is_ok_and(|v| (v.major_version, v.minor_version) >= (0, 2));
        let atom = |name: &[u8]| -> Result<Atom, X11Error> {
            Ok(conn.intern_atom(false, name)?.reply()?.atom)
        };
        let atoms = Atoms {
            net_wm_name: atom(b"_NET_WM_NAME")?,
            utf8_string: atom(b"UTF8_STRING")?,
            net_client_list: atom(b"_NET_CLIENT_LIST")?,
        };
        Ok(Self {
            conn,
            root,
            screen_size,
            shm,
            composite,
            atoms,
        })
    }

    pub(crate) fn uses_shm(&self) -> bool {
        self.shm
    }

    /// The screen, then every top-level window that is shown and has a title.
    pub(crate) fn sources(&self) -> Result<Vec<ShareSource>, X11Error> {
        let mut sources = vec![ShareSource {
            id: "x11:screen".into(),
            kind: SourceKind::Screen,
            title: "Entire screen".into(),
            width: u32::from(self.screen_size.0),
            height: u32::from(self.screen_size.1),
        }];
        for window in self.top_level_windows()? {
            // A window can go between the listing and these questions: skip it then.
            let Ok(attributes) = self.conn.get_window_attributes(window)?.reply() else {
                continue;
            };
            if attributes.map_state != MapState::VIEWABLE || attributes.override_redirect {
                continue;
            }
            let Ok(geometry) = self.conn.get_geometry(window)?.reply() else {
                continue;
            };
            if geometry.width < 16 || geometry.height < 16 {
                continue;
            }
            let title = self.title(window).unwrap_or_default();
            if title.trim().is_empty() {
                continue;
            }
            sources.push(ShareSource {
                id: format!("x11:window:{window:#x}"),
                kind: SourceKind::Window,
                title,
                width: u32::from(geometry.width),
                height: u32::from(geometry.height),
            });
        }
        Ok(sources)
    }

    /// The window manager's list of client windows, or (no window manager) the root's
    /// children.
    fn top_level_windows(&self) -> Result<Vec<Window>, X11Error> {
        let listed = self
            .conn
            .get_property(
                false,
                self.root,
                self.atoms.net_client_list,
                AtomEnum::WINDOW,
                0,
                4096,
            )?
            .reply()?;
        if let Some(windows) = listed.value32() {
            let windows: Vec<Window> = windows.collect();
            if !windows.is_empty() {
                return Ok(windows);
            }
        }
        Ok(self.conn.query_tree(self.root)?.reply()?.children)
    }

    fn title(&self, window: Window) -> Option<String> {
        let utf8 = self
            .conn
            .get_property(
                false,
                window,
                self.atoms.net_wm_name,
                self.atoms.utf8_string,
                0,
                256,
            )
            .ok()?
            .reply()
            .ok()?;
        if !utf8.value.is_empty() {
            return Some(String::from_utf8_lossy(&utf8.value).into_owned());
        }
        let plain = self
            .conn
            .get_property(false, window, AtomEnum::WM_NAME, AtomEnum::ANY, 0, 256)
            .ok()?
            .reply()
            .ok()?;
        Some(String::from_utf8_lossy(&plain.value).into_owned())
    }

    /// A grabber for `target`, on this connection.
    pub(crate) fn grabber(self, target: Target) -> Result<Grabber, X11Error> {
        let mut size = (u32::from(self.screen_size.0), u32::from(self.screen_size.1));
        if let Target::Window(window) = target {
            // Checks the window is there, and makes the server keep its pixels off screen.
            let geometry = self.conn.get_geometry(window)?.reply()?;
            size = (u32::from(geometry.width), u32::from(geometry.height));
            if self.composite {
                self.conn
                    .composite_redirect_window(window, Redirect::AUTOMATIC)?
                    .check()?;
            }
        }
        Ok(Grabber {
            x: self,
            target,
            size,
            segment: None,
            pixels: Vec::new(),
        })
    }
}

/// Takes pictures of one target.
pub(crate) struct Grabber {
    x: X11,
    target: Target,
    /// The target's size when the grabber was made.
    size: (u32, u32),
    /// The shared segment and its id on the server's side.
    segment: Option<(Segment, shm::Seg)>,
    /// The pixels when there is no MIT-SHM.
    pixels: Vec<u8>,
}

/// A grabbed picture: BGRX (4 bytes a pixel, the X server's order on little-endian machines).
pub(crate) struct Grab<'a> {
    pub width: u32,
    pub height: u32,
    pub bgrx: &'a [u8],
}

impl Grabber {
    pub(crate) fn size(&self) -> (u32, u32) {
        self.size
    }

    /// The target's pixels now. [`X11Error::Gone`] when the window closed.
    pub(crate) fn grab(&mut self) -> Result<Grab<'_>, X11Error> {
        let conn = &self.x.conn;
        let (drawable, pixmap, width, height) = match self.target {
            Target::Screen => (
                self.x.root,
                None,
                self.x.screen_size.0,
                self.x.screen_size.1,
            ),
            Target::Window(window) => {
                let attributes = conn.get_window_attributes(window)?.reply()?;
                if attributes.map_state != MapState::VIEWABLE {
                    // Unmapped (minimised, or closing): the window manager may bring it
                    // back; a destroyed one fails the request above.
                    return Err(X11Error::Hidden);
                }
                let geometry = conn.get_geometry(window)?.reply()?;
                if self.x.composite {
                    // A name for the window's current off-screen pixmap (a new one after
                    // each resize), freed after the grab.
                    let pixmap = conn.generate_id().map_err(X11Error::from)?;
                    conn.composite_name_window_pixmap(window, pixmap)?.check()?;
                    (pixmap, Some(pixmap), geometry.width, geometry.height)
                } else {
                    (window, None, geometry.width, geometry.height)
                }
            }
        };
        let result = self.grab_drawable(drawable, width, height);
        if let Some(pixmap) = pixmap {
            let _ = self.x.conn.free_pixmap(pixmap);
        }
        let len = result?;
        let bgrx: &[u8] = match &self.segment {
            Some((segment, _)) if self.x.shm => segment.bytes(len),
            _ => &self.pixels[..len],
        };
        Ok(Grab {
            width: u32::from(width),
            height: u32::from(height),
            bgrx,
        })
    }

    /// Fills the segment (or `pixels`) with `drawable`'s picture; returns its length.
    fn grab_drawable(
        &mut self,
        drawable: Drawable,
        width: u16,
        height: u16,
    ) -> Result<usize, X11Error> {
        let len = usize::from(width) * usize::from(height) * 4;
        let conn = &self.x.conn;
        if self.x.shm {
            if self.segment.as_ref().is_none_or(|(s, _)| s.len() < len) {
                if let Some((_, old)) = self.segment.take() {
                    let _ = conn.shm_detach(old);
                }
                let segment = Segment::new(len.max(1))
                    .map_err(|e| X11Error::Protocol(format!("shared memory: {e}")))?;
                let seg = conn.generate_id().map_err(X11Error::from)?;
                conn.shm_attach(seg, segment.id(), false)?.check()?;
                segment.mark_for_removal();
                self.segment = Some((segment, seg));
            }
            let Some((_, seg)) = &self.segment else {
                return Err(X11Error::Protocol("no shared segment".into()));
            };
            let reply = conn
                .shm_get_image(
                    drawable,
                    0,
                    0,
                    width,
                    height,
                    !0,
                    ImageFormat::Z_PIXMAP.into(),
                    *seg,
                    0,
                )?
                .reply()?;
            if reply.depth != 24 && reply.depth != 32 {
                return Err(X11Error::Depth(reply.depth));
            }
            Ok(len.min(reply.size as usize))
        } else {
            let reply = conn
                .get_image(ImageFormat::Z_PIXMAP, drawable, 0, 0, width, height, !0)?
                .reply()?;
            if reply.depth != 24 && reply.depth != 32 {
                return Err(X11Error::Depth(reply.depth));
            }
            self.pixels = reply.data;
            Ok(len.min(self.pixels.len()))
        }
    }
}

impl Drop for Grabber {
    fn drop(&mut self) {
        if let Some((_, seg)) = self.segment.take() {
            let _ = self.x.conn.shm_detach(seg);
        }
        if let Target::Window(window) = self.target {
            if self.x.composite {
                let _ = self
                    .x
                    .conn
                    .composite_unredirect_window(window, Redirect::AUTOMATIC);
            }
        }
        let _ = self.x.conn.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_parse_back_and_junk_does_not() {
        assert_eq!(parse_target("x11:screen"), Some(Target::Screen));
        assert_eq!(
            parse_target("x11:window:0x2a00001"),
            Some(Target::Window(0x2a0_0001))
        );
        assert_eq!(parse_target("x11:window:0x0"), None);
        assert_eq!(parse_target("x11:window:zz"), None);
        assert_eq!(parse_target("x11:window:0x1ffffffff"), None);
        assert_eq!(parse_target("screen"), None);
        assert_eq!(parse_target(""), None);
    }
}
