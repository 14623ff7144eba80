//! Wayland: a Wayland client cannot read other clients' pixels, so the desktop's portal
//! (`org.freedesktop.portal.ScreenCast`, over D-Bus) asks the user in its own dialog what to
//! share, and hands back a PipeWire stream of it. One source stands for that dialog in the
//! picker: [`PORTAL_SOURCE_ID`].
//!
//! The portal's D-Bus calls run on zbus's own executor thread (the `async-io` flavour the app
//! already has); the PipeWire stream runs its loop on the capture thread, where its callbacks
//! copy, scale and leave frames in the [`FrameSlot`] as the X11 path does.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ashpd::desktop::screencast::{CursorMode, Screencast, SourceType};
use ashpd::desktop::{PersistMode, ResponseError, Session};
use pipewire as pw;
use pw::spa;

use crate::{
    fit_within, scale_bgrx, CaptureEnded, CaptureSettings, Counters, FrameSlot, ScreenError,
    ScreenFrame, ShareSource, SourceKind,
};

/// The source that asks the portal (a fresh choice in its dialog).
pub const PORTAL_SOURCE_ID: &str = "portal";
/// A source id after a choice: `portal:` and the portal's restore token, which shares the same
/// thing again without asking (after a call reconnects) where the portal keeps choices.
const RESUME_PREFIX: &str = "portal:";

/// How long the portal's dialog may stay open before the share is given up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(180);

pub(crate) fn source() -> ShareSource {
    ShareSource {
        id: PORTAL_SOURCE_ID.into(),
        kind: SourceKind::Portal,
        title: "A screen or window, chosen in your desktop's dialog".into(),
        width: 0,
        height: 0,
    }
}

/// Whether `source_id` goes through the portal; `Some(token)` when it resumes a choice.
pub(crate) fn parse_source(source_id: &str) -> Option<Option<String>> {
    if source_id == PORTAL_SOURCE_ID {
        Some(None)
    } else {
        source_id
            .strip_prefix(RESUME_PREFIX)
            .filter(|token| !token.is_empty())
            .map(|token| Some(token.to_owned()))
    }
}

/// What the portal gave: the stream to read and what it is.
struct Chosen {
    screencast: Screencast<'static>,
    session: Session<'static, Screencast<'static>>,
    remote: OwnedFd,
    node_id: u32,
    size: (u32, u32),
    label: String,
    resume_id: Option<String>,
}

/// What a started portal capture tells its caller.
pub(crate) struct Started {
    pub size: (u32, u32),
    pub label: String,
    pub resume_id: Option<String>,
}

fn portal_error(e: ashpd::Error) -> ScreenError {
    match e {
        ashpd::Error::Response(ResponseError::Cancelled) => ScreenError::PortalDeclined,
        ashpd::Error::Response(ResponseError::Other) => ScreenError::PortalDeclined,
        ashpd::Error::PortalNotFound(_) => ScreenError::PortalUnavailable,
        ashpd::Error::Zbus(ashpd::zbus::Error::MethodError(name, _, _))
            if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
                || name.as_str() == "org.freedesktop.DBus.Error.UnknownInterface"
                || name.as_str() == "org.freedesktop.DBus.Error.UnknownMethod" =>
        {
            ScreenError::PortalUnavailable
        }
        other => ScreenError::Capture(format!("the desktop portal failed: {other}")),
    }
}

async fn choose(restore_token: Option<String>) -> Result<Chosen, ScreenError> {
    let screencast = Screencast::new().await.map_err(portal_error)?;
    let session = screencast.create_session().await.map_err(portal_error)?;
    // The pointer in the picture where the portal can draw it.
    let cursor = match screencast.available_cursor_modes().await {
        Ok(modes) if modes.contains(CursorMode::Embedded) => CursorMode::Embedded,
        _ => CursorMode::Hidden,
    };
    let types = match screencast.available_source_types().await {
        Ok(types) if types.contains(SourceType::Window) => SourceType::Monitor | SourceType::Window,
        _ => SourceType::Monitor.into(),
    };
    screencast
        .select_sources(
            &session,
            cursor,
            types,
            false,
            restore_token.as_deref(),
            PersistMode::Application,
        )
        .await
        .map_err(portal_error)?
        .response()
        .map_err(portal_error)?;
    let streams = screencast
        .start(&session, None)
        .await
        .map_err(portal_error)?
        .response()
        .map_err(portal_error)?;
    let stream = streams
        .streams()
        .first()
        .ok_or(ScreenError::PortalDeclined)?;
    let size = stream
        .size()
        .map(|(w, h)| (w.max(0) as u32, h.max(0) as u32))
        .unwrap_or((0, 0));
    let label = match stream.source_type() {
        Some(SourceType::Window) => "a window",
        _ => "your screen",
    }
    .to_owned();
    let node_id = stream.pipe_wire_node_id();
    let resume_id = streams
        .restore_token()
        .map(|token| format!("{RESUME_PREFIX}{token}"));
    let remote = screencast
        .open_pipe_wire_remote(&session)
        .await
        .map_err(portal_error)?;
    Ok(Chosen {
        screencast,
        session,
        remote,
        node_id,
        size,
        label,
        resume_id,
    })
}

/// Asks the portal (its dialog, unless `restore_token` resumes a choice), then reads the stream
/// on a thread of its own until `stop` is set or the stream ends. Returns once the portal has
/// answered.
pub(crate) fn start(
    restore_token: Option<String>,
    settings: CaptureSettings,
    frames: Arc<FrameSlot>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    ended: Box<dyn FnOnce(CaptureEnded) + Send>,
) -> Result<Started, ScreenError> {
    let (answer, answered) = mpsc::channel();
    let thread_stop = stop.clone();
    std::thread::Builder::new()
        .name("confab-screen-portal".into())
        .spawn(move || {
            let chosen = match futures_lite::future::block_on(choose(restore_token)) {
                Ok(chosen) => chosen,
                Err(e) => {
                    let _ = answer.send(Err(e));
                    frames.close();
                    return;
                }
            };
            let started = Started {
                size: chosen.size,
                label: chosen.label.clone(),
                resume_id: chosen.resume_id.clone(),
            };
            if answer.send(Ok(started)).is_err() {
                // The caller gave up waiting: nobody wants this share any more.
                thread_stop.store(true, Ordering::Relaxed);
            }
            let why = read_stream(
                Some(chosen.remote),
                chosen.node_id,
                settings,
                &frames,
                &thread_stop,
                &counters,
            );
            let _ = futures_lite::future::block_on(chosen.session.close());
            drop(chosen.screencast);
            if let Some(why) = why {
                if !thread_stop.load(Ordering::Relaxed) {
                    ended(why);
                }
            }
            frames.close();
        })
        .map_err(|e| ScreenError::Capture(e.to_string()))?;
    match answered.recv_timeout(ANSWER_TIMEOUT) {
        Ok(result) => result,
        Err(_) => {
            stop.store(true, Ordering::Relaxed);
            Err(ScreenError::PortalDeclined)
        }
    }
}

/// The stream's pixel layout, as negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// B, G, R, and a byte that is not drawn: what the capture path carries.
    Bgrx,
    /// R, G, B, and a fourth: red and blue are swapped on the way in.
    Rgbx,
}

struct StreamState {
    layout: Option<Layout>,
    width: u32,
    height: u32,
    last_frame: Option<Instant>,
    streaming: bool,
    ended: Option<CaptureEnded>,
}

/// Reads PipeWire node `node_id` of this session's PipeWire (not through a portal) on a
/// thread of its own, as a portal's stream is read: the same reader, for tests where no
/// compositor can make a portal stream (see `crates/screen/tests/wayland_portal.rs`).
pub(crate) fn read_node(
    node_id: u32,
    settings: CaptureSettings,
    frames: Arc<FrameSlot>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    ended: Box<dyn FnOnce(CaptureEnded) + Send>,
) -> Result<(), ScreenError> {
    std::thread::Builder::new()
        .name("confab-screen-pipewire".into())
        .spawn(move || {
            let why = read_stream(None, node_id, settings, &frames, &stop, &counters);
            if let Some(why) = why {
                if !stop.load(Ordering::Relaxed) {
                    ended(why);
                }
            }
            frames.close();
        })
        .map(|_| ())
        .map_err(|e| ScreenError::Capture(e.to_string()))
}

/// Reads frames from a PipeWire node until stopped: through the portal's `remote`, or this
/// session's PipeWire without one. `Some` when it ended by itself.
fn read_stream(
    remote: Option<OwnedFd>,
    node_id: u32,
    settings: CaptureSettings,
    frames: &Arc<FrameSlot>,
    stop: &Arc<AtomicBool>,
    counters: &Arc<Counters>,
) -> Option<CaptureEnded> {
    match run_stream_loop(remote, node_id, settings, frames, stop, counters) {
        Ok(ended) => ended,
        Err(e) => Some(CaptureEnded::Failed(format!("PipeWire: {e}"))),
    }
}

fn run_stream_loop(
    remote: Option<OwnedFd>,
    node_id: u32,
    settings: CaptureSettings,
    frames: &Arc<FrameSlot>,
    stop: &Arc<AtomicBool>,
    counters: &Arc<Counters>,
) -> Result<Option<CaptureEnded>, pw::Error> {
    pw::init();
    let main_loop = pw::main_loop::MainLoopRc::new(None)?;
    let context = pw::context::ContextRc::new(&main_loop, None)?;
    let core = match remote {
        Some(fd) => context.connect_fd_rc(fd, None)?,
        None => context.connect_rc(None)?,
    };
    let stream = pw::stream::StreamBox::new(
        &core,
        "confab-screen-share",
        pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
        },
    )?;
    let state = Rc::new(RefCell::new(StreamState {
        layout: None,
        width: 0,
        height: 0,
        last_frame: None,
        streaming: false,
        ended: None,
    }));
    // Frames closer together than this are skipped (the compositor may send more than asked).
    let period = Duration::from_secs(1) / settings.fps.clamp(1, 60);
    let min_gap = period.mul_f32(0.8);

    let on_state = {
        let (state, main_loop) = (state.clone(), main_loop.clone());
        move |_: &pw::stream::Stream, _: &mut (), _old, new| match new {
            pw::stream::StreamState::Streaming => state.borrow_mut().streaming = true,
            pw::stream::StreamState::Error(message) => {
                state.borrow_mut().ended = Some(CaptureEnded::Failed(message));
                main_loop.quit();
            }
            // The portal's node went away: the window closed, or the desktop stopped the share.
            pw::stream::StreamState::Unconnected => {
                state.borrow_mut().ended = Some(CaptureEnded::EndedByDesktop);
                main_loop.quit();
            }
            _ => {}
        }
    };
    let on_param = {
        let state = state.clone();
        move |_: &pw::stream::Stream, _: &mut (), id: u32, param: Option<&spa::pod::Pod>| {
            let Some(param) = param else { return };
            if id != spa::param::ParamType::Format.as_raw() {
                return;
            }
            let mut info = spa::param::video::VideoInfoRaw::new();
            if info.parse(param).is_err() {
                return;
            }
            let mut state = state.borrow_mut();
            state.layout = match info.format() {
                spa::param::video::VideoFormat::BGRx | spa::param::video::VideoFormat::BGRA => {
                    Some(Layout::Bgrx)
                }
                spa::param::video::VideoFormat::RGBx | spa::param::video::VideoFormat::RGBA => {
                    Some(Layout::Rgbx)
                }
                _ => None,
            };
            state.width = info.size().width;
            state.height = info.size().height;
        }
    };
    let on_process = {
        let (state, frames, counters) = (state.clone(), frames.clone(), counters.clone());
        let mut packed = Vec::new();
        move |stream: &pw::stream::Stream, _: &mut ()| {
            let Some(mut buffer) = stream.dequeue_buffer() else {
                return;
            };
            let mut state = state.borrow_mut();
            let started = Instant::now();
            if state
                .last_frame
                .is_some_and(|last| started.duration_since(last) < min_gap)
            {
                return;
            }
            let (Some(layout), width, height) = (state.layout, state.width, state.height) else {
                return;
            };
            let Some(data) = buffer.datas_mut().first_mut() else {
                return;
            };
            let (offset, size, stride) = {
                let chunk = data.chunk();
                (
                    chunk.offset() as usize,
                    chunk.size() as usize,
                    chunk.stride(),
                )
            };
            let Some(bytes) = data.data() else { return };
            let stride = if stride > 0 {
                stride as usize
            } else {
                width as usize * 4
            };
            let Some(pixels) = bytes.get(offset..offset.saturating_add(size)) else {
                return;
            };
            if !pack_rows(pixels, width, height, stride, layout, &mut packed) {
                // An empty buffer: nothing changed on screen (the compositor sends damage only).
                return;
            }
            state.last_frame = Some(started);
            drop(state);
            let captured_unix_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let (out_w, out_h) = fit_within(width, height, settings.max_width, settings.max_height);
            let mut bgrx = Vec::new();
            scale_bgrx(&packed, width, height, &mut bgrx, out_w, out_h);
            counters.captured.fetch_add(1, Ordering::Relaxed);
            counters
                .grab_micros
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            let frame = ScreenFrame {
                width: out_w,
                height: out_h,
                bgrx,
                captured_at: started,
                captured_unix_ms,
            };
            if frames.put(frame) {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    let _listener = stream
        .add_local_listener_with_user_data(())
        .state_changed(on_state)
        .param_changed(on_param)
        .process(on_process)
        .register()?;

    let format = format_pod(settings.fps);
    let mut params = [spa::pod::Pod::from_bytes(&format).ok_or(pw::Error::CreationFailed)?];
    stream.connect(
        spa::utils::Direction::Input,
        Some(node_id),
        pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
        &mut params,
    )?;

    // The node going away (the window closed, the desktop stopped the cast) leaves the stream
    // waiting for another; the registry says it went.
    let registry = core.get_registry()?;
    let _registry_listener = {
        let (state, main_loop) = (state.clone(), main_loop.clone());
        registry
            .add_listener_local()
            .global_remove(move |id| {
                if id == node_id {
                    state.borrow_mut().ended = Some(CaptureEnded::EndedByDesktop);
                    main_loop.quit();
                }
            })
            .register()
    };

    // Stopping is a flag another thread sets: look at it a few times a frame.
    let quit_when_stopped = {
        let (main_loop, stop) = (main_loop.clone(), stop.clone());
        move |_| {
            if stop.load(Ordering::Relaxed) {
                main_loop.quit();
            }
        }
    };
    let timer = main_loop.loop_().add_timer(quit_when_stopped);
    let tick = Duration::from_millis(50);
    let _ = timer.update_timer(Some(tick), Some(tick));
    main_loop.run();
    let _ = stream.disconnect();
    let ended = state.borrow_mut().ended.take();
    Ok(ended)
}

/// The formats asked of the portal's stream: 4-byte RGB in either order, any size, up to
/// `fps` frames a second.
fn format_pod(fps: u32) -> Vec<u8> {
    use spa::param::format::{FormatProperties, MediaSubtype, MediaType};
    use spa::param::video::VideoFormat;
    use spa::pod::{property, Value};
    use spa::utils::{Fraction, Rectangle, SpaTypes};
    let object = spa::pod::object!(
        SpaTypes::ObjectParamFormat,
        spa::param::ParamType::EnumFormat,
        property!(FormatProperties::MediaType, Id, MediaType::Video),
        property!(FormatProperties::MediaSubtype, Id, MediaSubtype::Raw),
        property!(
            FormatProperties::VideoFormat,
            Choice,
            Enum,
            Id,
            VideoFormat::BGRx,
            VideoFormat::BGRx,
            VideoFormat::BGRA,
            VideoFormat::RGBx,
            VideoFormat::RGBA
        ),
        property!(
            FormatProperties::VideoSize,
            Choice,
            Range,
            Rectangle,
            Rectangle {
                width: 1920,
                height: 1080
            },
            Rectangle {
                width: 1,
                height: 1
            },
            Rectangle {
                width: 8192,
                height: 8192
            }
        ),
        property!(
            FormatProperties::VideoFramerate,
            Choice,
            Range,
            Fraction,
            Fraction { num: fps, denom: 1 },
            Fraction { num: 0, denom: 1 },
            Fraction {
                num: 1000,
                denom: 1
            }
        ),
    );
    spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &Value::Object(object),
    )
    .map(|(cursor, _)| cursor.into_inner())
    .unwrap_or_default()
}

/// Copies `height` rows of `width` pixels, `stride` bytes apart, into tight BGRX rows. False
/// when the buffer holds less than a whole frame.
fn pack_rows(
    pixels: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    layout: Layout,
    out: &mut Vec<u8>,
) -> bool {
    let (width, height) = (width as usize, height as usize);
    let row_bytes = width * 4;
    if width == 0 || height == 0 || stride < row_bytes {
        return false;
    }
    let needed = stride * (height - 1) + row_bytes;
    if pixels.len() < needed {
        return false;
    }
    out.clear();
    out.reserve(row_bytes * height);
    for y in 0..height {
        out.extend_from_slice(&pixels[y * stride..y * stride + row_bytes]);
    }
    if layout == Layout::Rgbx {
        for pixel in out.chunks_exact_mut(4) {
            pixel.swap(0, 2);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_sources_are_told_apart_from_x11_ones() {
        assert_eq!(parse_source("portal"), Some(None));
        assert_eq!(parse_source("portal:abc"), Some(Some("abc".into())));
        assert_eq!(parse_source("portal:"), None);
        assert_eq!(parse_source("screen"), None);
    }

    #[test]
    fn the_portal_s_answers_are_plain_errors() {
        let code = |e| portal_error(e).code();
        assert_eq!(
            code(ashpd::Error::Response(ResponseError::Cancelled)),
            "portal_declined"
        );
        assert_eq!(
            code(ashpd::Error::Response(ResponseError::Other)),
            "portal_declined"
        );
        assert_eq!(code(ashpd::Error::NoResponse), "capture_failed");
    }

    #[test]
    fn rows_are_packed_past_their_padding_and_rgb_is_turned_to_bgr() {
        // 2x2, rows 12 bytes apart (4 bytes of padding each).
        let pixels = [
            1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, //
            9, 10, 11, 12, 13, 14, 15, 16,
        ];
        let mut out = Vec::new();
        assert!(pack_rows(&pixels, 2, 2, 12, Layout::Bgrx, &mut out));
        assert_eq!(out, (1..=16).collect::<Vec<u8>>());
        assert!(pack_rows(&pixels, 2, 2, 12, Layout::Rgbx, &mut out));
        assert_eq!(&out[..8], &[3, 2, 1, 4, 7, 6, 5, 8]);
        // Short of the last row: no frame.
        assert!(!pack_rows(&pixels[..15], 2, 2, 12, Layout::Bgrx, &mut out));
        assert!(!pack_rows(&pixels, 2, 2, 4, Layout::Bgrx, &mut out));
    }
}
