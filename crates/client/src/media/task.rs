//! The task behind a [`CallSession`](super::CallSession): it owns the signal socket, the UDP
//! socket and the peer connection, so nothing else ever waits on them.
//!
//! Negotiation follows livekit-client's single peer connection: this side always offers.
//! The first offer travels in the join request; later ones follow a publish, the SFU's
//! `media_sections_requirement`, or an ICE restart. str0m allows one offer in flight; wishes
//! that arrive meanwhile are folded into the next one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use livekit_protocol as lk;
use lk::signal_request::Message as Req;
use lk::signal_response::Message as Resp;
use prost::Message as _;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{Codec, CodecExtra};
use str0m::media::{
    Direction, Frequency, KeyframeRequestKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::remote::Remotes;
use super::signal::{join_request, signal_url};
use super::{
    CallEvent, CallSessionOptions, CallStats, Command, EncodedFrame, JoinMediaError, MediaKind,
    PublishError, RemoteFrame, SfuCredentials, TrackSource, TrackSpec, TrackStats, VideoCodec,
};
use crate::backoff::ReconnectPolicy;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest signal message accepted from the SFU.
const MAX_SIGNAL_BYTES: usize = 1024 * 1024;
/// How long without any datagram from the SFU before the ICE path counts as broken.
const UDP_SILENCE_BEFORE_RESTART: Duration = Duration::from_secs(2);
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

struct LocalTrackState {
    cid: String,
    spec: TrackSpec,
    sid: Option<String>,
    mid: Option<Mid>,
    pt: Option<str0m::media::Pt>,
    reply: Option<oneshot::Sender<Result<String, PublishError>>>,
    requested_at: Instant,
}

/// One connection to the SFU: replaced wholesale by a full rejoin.
struct Connection {
    ws: Ws,
    rtc: Rtc,
    socket: UdpSocket,
    local_addr: SocketAddr,
    own_sid: String,
    identity: String,
    pending: Option<(SdpPendingOffer, u32)>,
    next_offer_id: u32,
    wants_offer: bool,
    /// Sections of unpublished tracks, to offer as inactive in the next offer.
    stopped_sends: Vec<Mid>,
    extra_audio: u32,
    extra_video: u32,
    ice_restart: bool,
    recv_mids: Vec<Mid>,
    mid_to_track: HashMap<String, String>,
    ping_interval: Duration,
    ping_timeout: Duration,
    last_signal: Instant,
    next_ping: Instant,
    last_datagram: Instant,
    ice_connected: bool,
    restarting_ice: bool,
    blip_until: Option<Instant>,
}

struct SessionTask {
    receive_loss: f32,
    rng: fastrand::Rng,
    credentials: SfuCredentials,
    options: CallSessionOptions,
    events: mpsc::Sender<CallEvent>,
    tracks: Vec<LocalTrackState>,
    remotes: Remotes,
    stats: CallStats,
    track_stats: HashMap<(String, Option<String>, bool), (TrackStats, Instant)>,
}

pub(crate) async fn start(
    credentials: SfuCredentials,
    options: CallSessionOptions,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<CallEvent>,
) -> Result<(String, String), JoinMediaError> {
    if !options.allow_insecure {
        if let Some(reason) = crate::secure_transport::insecure_reason(&credentials.url) {
            return Err(JoinMediaError::Insecure(reason));
        }
    }
    let mut task = SessionTask {
        receive_loss: 0.0,
        rng: fastrand::Rng::new(),
        credentials,
        options,
        events,
        tracks: Vec::new(),
        remotes: Remotes::default(),
        stats: CallStats::default(),
        track_stats: HashMap::new(),
    };
    let (conn, join_events) = task.connect().await?;
    let ids = (conn.own_sid.clone(), conn.identity.clone());
    tokio::spawn(async move {
        for event in join_events {
            task.emit(event).await;
        }
        task.run(conn, commands).await;
    });
    Ok(ids)
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn binary(message: Req) -> WsMessage {
    WsMessage::Binary(
        lk::SignalRequest {
            message: Some(message),
        }
        .encode_to_vec()
        .into(),
    )
}

/// The local address the system would use toward `target`: the host candidate to announce.
fn local_ip_toward(target: SocketAddr) -> std::io::Result<std::net::IpAddr> {
    let probe = std::net::UdpSocket::bind(if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    // A UDP connect sends nothing; it only picks the route.
    probe.connect(target)?;
    Ok(probe.local_addr()?.ip())
}

fn source_of(source: TrackSource) -> lk::TrackSource {
    match source {
        TrackSource::Camera => lk::TrackSource::Camera,
        TrackSource::Microphone => lk::TrackSource::Microphone,
        TrackSource::ScreenShare => lk::TrackSource::ScreenShare,
        TrackSource::ScreenShareAudio => lk::TrackSource::ScreenShareAudio,
    }
}

fn quality_of(rid: &str) -> lk::VideoQuality {
    match rid {
        "q" => lk::VideoQuality::Low,
        "h" => lk::VideoQuality::Medium,
        _ => lk::VideoQuality::High,
    }
}

fn add_track_request(cid: &str, spec: &TrackSpec) -> lk::AddTrackRequest {
    let video = spec.kind == MediaKind::Video;
    lk::AddTrackRequest {
        cid: cid.to_owned(),
        name: spec.name.clone(),
        r#type: if video {
            lk::TrackType::Video
        } else {
            lk::TrackType::Audio
        } as i32,
        width: spec.width,
        height: spec.height,
        muted: spec.muted,
        source: source_of(spec.source) as i32,
        layers: spec
            .layers
            .iter()
            .map(|l| lk::VideoLayer {
                quality: quality_of(&l.rid) as i32,
                width: l.width,
                height: l.height,
                bitrate: l.bitrate,
                rid: l.rid.clone(),
                ..Default::default()
            })
            .collect(),
        simulcast_codecs: if video {
            vec![lk::SimulcastCodec {
                codec: match spec.codec {
                    VideoCodec::H264 => "h264",
                    VideoCodec::Vp8 => "vp8",
                }
                .to_owned(),
                cid: cid.to_owned(),
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

fn keyframe(codec: Codec, extra: &CodecExtra, data: &[u8]) -> bool {
    match (codec, extra) {
        (_, CodecExtra::H264(e)) => e.is_keyframe,
        (Codec::Vp8, _) => data.first().is_some_and(|b| b & 1 == 0),
        _ => false,
    }
}

fn mime_of(codec: Codec) -> &'static str {
    match codec {
        Codec::Opus => "audio/opus",
        Codec::H264 => "video/H264",
        Codec::Vp8 => "video/VP8",
        Codec::Vp9 => "video/VP9",
        Codec::Av1 => "video/AV1",
        _ => "application/octet-stream",
    }
}

enum Flow {
    Continue,
    Lost(String),
    Ended(String),
    Left,
}

impl SessionTask {
    async fn emit(&mut self, event: CallEvent) {
        if let CallEvent::Frame(_) = event {
            if self.events.try_send(event).is_err() {
                self.stats.frames_dropped += 1;
            } else {
                self.stats.frames_received += 1;
            }
            return;
        }
        let _ = self.events.send(event).await;
    }

    /// A full join: new peer connection, new signal socket, the join answer read.
    async fn connect(&mut self) -> Result<(Connection, Vec<CallEvent>), JoinMediaError> {
        let parsed = url::Url::parse(self.credentials.url.trim())
            .map_err(|e| JoinMediaError::BadUrl(e.to_string()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| JoinMediaError::BadUrl("the address names no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let target = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| JoinMediaError::Unreachable(e.to_string()))?
            .next()
            .ok_or_else(|| JoinMediaError::Unreachable(format!("{host} has no address")))?;
        let ip = local_ip_toward(target).map_err(|e| JoinMediaError::Media(e.to_string()))?;
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(|e| JoinMediaError::Media(e.to_string()))?;
        let local_addr = socket
            .local_addr()
            .map_err(|e| JoinMediaError::Media(e.to_string()))?;

        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .enable_bwe(
                self.options
                    .bandwidth_estimation
                    .map(str0m::bwe::Bitrate::bps),
            )
            .build(now);
        let candidate =
            Candidate::host(local_addr, "udp").map_err(|e| JoinMediaError::Media(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        api.add_channel("_reliable".to_owned());
        let mut recv_mids = Vec::new();
        for _ in 0..self.options.initial_receive_sections {
            recv_mids.push(receive_section(&mut api, str0m::media::MediaKind::Audio));
            recv_mids.push(receive_section(&mut api, str0m::media::MediaKind::Video));
        }
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| JoinMediaError::Media("no offer could be made".into()))?;
        let offer = lk::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.to_sdp_string(),
            id: 1,
            mid_to_track_id: HashMap::new(),
        };
        let join = join_request(Some(offer), self.options.auto_subscribe, None);
        let url = signal_url(&self.credentials.url, &self.credentials.token, &join)?;

        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_SIGNAL_BYTES))
            .max_frame_size(Some(MAX_SIGNAL_BYTES));
        let timeout = self.options.join_timeout;
        let (mut ws, _) = match tokio::time::timeout(
            timeout,
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false),
        )
        .await
        {
            Err(_) => return Err(JoinMediaError::Timeout),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let message = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).chars().take(300).collect())
                    .unwrap_or_default();
                return Err(JoinMediaError::Refused { status, message });
            }
            Ok(Err(e)) => return Err(JoinMediaError::Unreachable(e.to_string())),
            Ok(Ok(pair)) => pair,
        };
        // The first message must be the join answer (or a leave that refuses it).
        let first = tokio::time::timeout(timeout, async {
            loop {
                match ws.next().await {
                    Some(Ok(WsMessage::Binary(bytes))) => return Ok(bytes),
                    Some(Ok(WsMessage::Close(_))) | None => {
                        return Err(JoinMediaError::Ended(
                            "the SFU closed the connection".into(),
                        ))
                    }
                    Some(Err(e)) => return Err(JoinMediaError::Unreachable(e.to_string())),
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await
        .map_err(|_| JoinMediaError::Timeout)??;
        let response = lk::SignalResponse::decode(first.as_ref()).map_err(|_| {
            JoinMediaError::Ended("the SFU's answer is not a signal message".into())
        })?;
        let join = match response.message {
            Some(Resp::Join(join)) => join,
            Some(Resp::Leave(leave)) => {
                let reason = lk::DisconnectReason::try_from(leave.reason)
                    .map(|r| r.as_str_name().to_owned())
                    .unwrap_or_default();
                return Err(JoinMediaError::Ended(format!(
                    "the SFU refused the join ({reason})"
                )));
            }
            _ => {
                return Err(JoinMediaError::Ended(
                    "the SFU did not answer the join first".into(),
                ))
            }
        };
        let me = join.participant.clone().unwrap_or_default();
        let mut events = vec![CallEvent::Joined {
            sid: me.sid.clone(),
        }];
        for other in &join.other_participants {
            events.extend(self.remotes.apply(other, &me.sid));
        }
        let interval = u64::try_from(join.ping_interval.max(0)).unwrap_or(0);
        let ping_timeout = u64::try_from(join.ping_timeout.max(0)).unwrap_or(0);
        let conn = Connection {
            ws,
            rtc,
            socket,
            local_addr,
            own_sid: me.sid,
            identity: me.identity,
            pending: Some((pending, 1)),
            next_offer_id: 2,
            wants_offer: false,
            stopped_sends: Vec::new(),
            extra_audio: 0,
            extra_video: 0,
            ice_restart: false,
            recv_mids,
            mid_to_track: HashMap::new(),
            ping_interval: Duration::from_secs(if interval == 0 { 5 } else { interval }),
            ping_timeout: Duration::from_secs(if ping_timeout == 0 { 15 } else { ping_timeout }),
            last_signal: now,
            next_ping: now,
            last_datagram: now,
            ice_connected: false,
            restarting_ice: false,
            blip_until: None,
        };
        Ok((conn, events))
    }

    async fn run(mut self, mut conn: Connection, mut commands: mpsc::Receiver<Command>) {
        // Tracks from before a rejoin are announced again.
        let mut buf = vec![0u8; 2048];
        loop {
            let flow = self.step(&mut conn, &mut commands, &mut buf).await;
            match flow {
                Flow::Continue => {}
                Flow::Left => return,
                Flow::Ended(reason) => {
                    self.fail_pending_publishes();
                    self.emit(CallEvent::Disconnected { reason }).await;
                    return;
                }
                Flow::Lost(why) => {
                    tracing::debug!(target: "call_session", "SFU connection lost: {why}");
                    match self.rejoin(&mut commands).await {
                        Some(new_conn) => conn = new_conn,
                        None => {
                            self.fail_pending_publishes();
                            self.emit(CallEvent::Disconnected {
                                reason: format!(
                                    "the call's media server was lost ({why}) and rejoining failed"
                                ),
                            })
                            .await;
                            return;
                        }
                    }
                }
            }
        }
    }

    fn fail_pending_publishes(&mut self) {
        for track in &mut self.tracks {
            if let Some(reply) = track.reply.take() {
                let _ = reply.send(Err(PublishError::Ended));
            }
        }
    }

    async fn rejoin(&mut self, commands: &mut mpsc::Receiver<Command>) -> Option<Connection> {
        let policy = ReconnectPolicy::default();
        let mut rng = fastrand::Rng::new();
        for event in self.remotes.clear() {
            self.emit(event).await;
        }
        for attempt in 1..=self.options.max_rejoin_attempts {
            let delay = policy.reconnect_delay(attempt - 1, &mut rng);
            self.emit(CallEvent::Reconnecting {
                attempt,
                retry_in: delay,
            })
            .await;
            // Commands keep being answered while waiting (frames are dropped: no path).
            let wait = tokio::time::sleep(delay);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    command = commands.recv() => match command {
                        None => return None,
                        Some(Command::Leave(reply)) => { let _ = reply.send(()); return None; }
                        Some(Command::Stats(reply)) => { let _ = reply.send(self.stats.clone()); }
                        Some(Command::Participants(reply)) => { let _ = reply.send(Vec::new()); }
                        Some(Command::Publish { cid, spec, reply }) => self.queue_publish(cid, spec, reply),
                        Some(_) => {}
                    }
                }
            }
            match self.connect().await {
                Ok((mut conn, events)) => {
                    self.stats.rejoins += 1;
                    for event in events {
                        self.emit(event).await;
                    }
                    for track in &mut self.tracks {
                        track.sid = None;
                        track.mid = None;
                        track.pt = None;
                        track.requested_at = Instant::now();
                        let request = add_track_request(&track.cid, &track.spec);
                        let _ = conn.ws.send(binary(Req::AddTrack(request))).await;
                    }
                    self.emit(CallEvent::Reconnected).await;
                    return Some(conn);
                }
                Err(e) if e.is_terminal() => {
                    tracing::debug!(target: "call_session", "rejoin refused: {e}");
                    return None;
                }
                Err(e) => {
                    tracing::debug!(target: "call_session", "rejoin attempt {attempt} failed: {e}")
                }
            }
        }
        None
    }

    fn queue_publish(
        &mut self,
        cid: String,
        spec: TrackSpec,
        reply: oneshot::Sender<Result<String, PublishError>>,
    ) {
        self.tracks.push(LocalTrackState {
            cid,
            spec,
            sid: None,
            mid: None,
            pt: None,
            reply: Some(reply),
            requested_at: Instant::now(),
        });
    }

    /// One round: drive the peer connection, then wait for the next thing to happen.
    async fn step(
        &mut self,
        conn: &mut Connection,
        commands: &mut mpsc::Receiver<Command>,
        buf: &mut [u8],
    ) -> Flow {
        let timeout = match self.drive(conn).await {
            Ok(t) => t,
            Err(flow) => return flow,
        };
        if let Err(flow) = self.negotiate(conn).await {
            return flow;
        }
        let now = Instant::now();
        if conn.blip_until.is_some_and(|t| t <= now) {
            conn.blip_until = None;
        }
        // Publishes the SFU never confirmed.
        for track in &mut self.tracks {
            if track.sid.is_none() && now.duration_since(track.requested_at) > PUBLISH_TIMEOUT {
                if let Some(reply) = track.reply.take() {
                    let _ = reply.send(Err(PublishError::Timeout));
                }
            }
        }
        self.tracks.retain(|t| {
            t.sid.is_some()
                || t.reply.is_some()
                || now.duration_since(t.requested_at) <= PUBLISH_TIMEOUT
        });
        if now.duration_since(conn.last_signal) > conn.ping_timeout {
            return Flow::Lost("the signal connection went silent".into());
        }
        if conn.ice_connected
            && !conn.restarting_ice
            && now.duration_since(conn.last_datagram) > UDP_SILENCE_BEFORE_RESTART
        {
            conn.restarting_ice = true;
            conn.ice_restart = true;
            self.emit(CallEvent::Reconnecting {
                attempt: 0,
                retry_in: Duration::ZERO,
            })
            .await;
            if let Err(flow) = self.negotiate(conn).await {
                return flow;
            }
        }
        let wake = timeout
            .min(conn.next_ping)
            .min(now + Duration::from_millis(500))
            .max(now + Duration::from_millis(1));
        tokio::select! {
            command = commands.recv() => match command {
                None => {
                    let _ = conn.ws.send(binary(Req::Leave(lk::LeaveRequest {
                        reason: lk::DisconnectReason::ClientInitiated as i32,
                        ..Default::default()
                    }))).await;
                    let _ = conn.ws.close(None).await;
                    return Flow::Left;
                }
                Some(command) => return self.on_command(conn, command).await,
            },
            message = conn.ws.next() => match message {
                Some(Ok(WsMessage::Binary(bytes))) => {
                    conn.last_signal = Instant::now();
                    match lk::SignalResponse::decode(bytes.as_ref()) {
                        Ok(response) => {
                            if let Some(m) = response.message {
                                return self.on_signal(conn, m).await;
                            }
                        }
                        Err(_) => tracing::debug!(target: "call_session", "undecodable signal message dropped"),
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None => return Flow::Lost("the SFU closed the signal connection".into()),
                Some(Err(e)) => return Flow::Lost(e.to_string()),
                Some(Ok(_)) => conn.last_signal = Instant::now(),
            },
            received = conn.socket.recv_from(buf) => {
                if let Ok((n, source)) = received {
                    let lost = conn.ice_connected
                        && self.receive_loss > 0.0
                        && self.rng.f32() < self.receive_loss;
                    if conn.blip_until.is_none() && !lost {
                        conn.last_datagram = Instant::now();
                        if let Ok(contents) = buf[..n].try_into() {
                            let input = Input::Receive(Instant::now(), Receive {
                                proto: Protocol::Udp,
                                source,
                                destination: conn.local_addr,
                                contents,
                            });
                            if conn.rtc.accepts(&input) {
                                let _ = conn.rtc.handle_input(input);
                            }
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                let _ = conn.rtc.handle_input(Input::Timeout(now));
                if now >= conn.next_ping {
                    conn.next_ping = now + conn.ping_interval;
                    let ts = now_millis();
                    let rtt = self.stats.rtt.map_or(0, |r| r.as_millis() as i64);
                    if conn.ws.send(binary(Req::Ping(ts))).await.is_err()
                        || conn.ws.send(binary(Req::PingReq(lk::Ping { timestamp: ts, rtt }))).await.is_err()
                    {
                        return Flow::Lost("the signal connection failed".into());
                    }
                }
            }
        }
        Flow::Continue
    }

    /// Polls the peer connection until it has nothing more to say; returns when it next
    /// needs time.
    async fn drive(&mut self, conn: &mut Connection) -> Result<Instant, Flow> {
        let mut produced = Vec::new();
        let timeout = loop {
            if !conn.rtc.is_alive() {
                return Err(Flow::Lost("the peer connection closed".into()));
            }
            match conn.rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    if conn.blip_until.is_none() {
                        let _ = conn.socket.try_send_to(&t.contents, t.destination);
                    }
                }
                Ok(Output::Event(event)) => {
                    if let Some(e) = self.on_rtc_event(conn, event) {
                        produced.push(e);
                    }
                }
                Err(e) => return Err(Flow::Lost(e.to_string())),
            }
        };
        for event in produced {
            self.emit(event).await;
        }
        Ok(timeout)
    }

    fn on_rtc_event(&mut self, conn: &mut Connection, event: Event) -> Option<CallEvent> {
        match event {
            Event::IceConnectionStateChange(state) => match state {
                IceConnectionState::Connected | IceConnectionState::Completed => {
                    conn.ice_connected = true;
                    if conn.restarting_ice {
                        conn.restarting_ice = false;
                        return Some(CallEvent::Reconnected);
                    }
                    None
                }
                IceConnectionState::Disconnected => {
                    if !conn.restarting_ice {
                        conn.restarting_ice = true;
                        conn.ice_restart = true;
                        return Some(CallEvent::Reconnecting {
                            attempt: 0,
                            retry_in: Duration::ZERO,
                        });
                    }
                    None
                }
                _ => None,
            },
            Event::MediaData(data) => {
                let track_sid = conn.mid_to_track.get(&data.mid.to_string())?.clone();
                let (participant, track) = self.remotes.track(&track_sid)?;
                let codec = data.params.spec().codec;
                // Frames were lost and not recovered: a decoder needs a keyframe to go on, so
                // ask now rather than wait for the publisher's next one.
                if !data.contiguous && track.kind == MediaKind::Video {
                    if let Some(mut writer) = conn.rtc.writer(data.mid) {
                        let _ = writer.request_keyframe(data.rid, KeyframeRequestKind::Pli);
                    }
                }
                let frame = RemoteFrame {
                    participant_sid: participant.sid.clone(),
                    identity: participant.identity.clone(),
                    track_sid,
                    kind: track.kind,
                    mime: mime_of(codec).to_owned(),
                    keyframe: keyframe(codec, &data.codec_extra, &data.data),
                    rtp_time: data.time.numer(),
                    contiguous: data.contiguous,
                    data: data.data,
                    received_at: data.network_time,
                };
                Some(CallEvent::Frame(frame))
            }
            Event::KeyframeRequest(request) => {
                let track_sid = self
                    .tracks
                    .iter()
                    .find(|t| t.mid == Some(request.mid))
                    .and_then(|t| t.sid.clone())?;
                Some(CallEvent::KeyframeRequested {
                    track_sid,
                    rid: request.rid.map(|r| r.to_string()),
                })
            }
            Event::MediaEgressStats(s) => {
                let sid = self
                    .tracks
                    .iter()
                    .find(|t| t.mid == Some(s.mid))
                    .and_then(|t| t.sid.clone())?;
                self.record_stats(sid, s.rid, true, s.bytes, s.packets, s.loss, s.rtt, s.nacks);
                None
            }
            Event::MediaIngressStats(s) => {
                let sid = conn.mid_to_track.get(&s.mid.to_string())?.clone();
                self.record_stats(
                    sid, s.rid, false, s.bytes, s.packets, s.loss, s.rtt, s.nacks,
                );
                None
            }
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
                Some(CallEvent::BandwidthEstimate {
                    bps: estimate.as_u64(),
                })
            }
            Event::PeerStats(s) => {
                if s.rtt.is_some() {
                    self.stats.rtt = s.rtt;
                }
                None
            }
            _ => None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record_stats(
        &mut self,
        track_sid: String,
        rid: Option<Rid>,
        outgoing: bool,
        bytes: u64,
        packets: u64,
        loss: Option<f32>,
        rtt: Option<Duration>,
        nacks: u64,
    ) {
        let rid = rid.map(|r| r.to_string());
        let key = (track_sid.clone(), rid.clone(), outgoing);
        let now = Instant::now();
        let bitrate = self.track_stats.get(&key).map_or(0, |(old, at)| {
            let secs = now.duration_since(*at).as_secs_f64();
            if secs > 0.0 {
                (bytes.saturating_sub(old.bytes) as f64 * 8.0 / secs) as u64
            } else {
                old.bitrate_bps
            }
        });
        let stats = TrackStats {
            track_sid,
            outgoing,
            rid,
            bytes,
            packets,
            bitrate_bps: bitrate,
            loss,
            rtt,
            nacks,
        };
        self.track_stats.insert(key, (stats, now));
    }

    /// Makes the next offer if one is wanted and none is in flight.
    async fn negotiate(&mut self, conn: &mut Connection) -> Result<(), Flow> {
        let publishes = self
            .tracks
            .iter()
            .any(|t| t.sid.is_some() && t.mid.is_none());
        if conn.pending.is_some() || !(conn.wants_offer || publishes || conn.ice_restart) {
            return Ok(());
        }
        let mut api = conn.rtc.sdp_api();
        for _ in 0..conn.extra_audio.min(16) {
            conn.recv_mids
                .push(receive_section(&mut api, str0m::media::MediaKind::Audio));
        }
        for _ in 0..conn.extra_video.min(16) {
            conn.recv_mids
                .push(receive_section(&mut api, str0m::media::MediaKind::Video));
        }
        conn.extra_audio = 0;
        conn.extra_video = 0;
        // Sections the SFU left idle came back inactive; offer them for receiving again.
        for mid in &conn.recv_mids {
            api.set_direction(*mid, Direction::RecvOnly);
        }
        for mid in conn.stopped_sends.drain(..) {
            api.set_direction(mid, Direction::Inactive);
        }
        for track in self
            .tracks
            .iter_mut()
            .filter(|t| t.sid.is_some() && t.mid.is_none())
        {
            let kind = match track.spec.kind {
                MediaKind::Audio => str0m::media::MediaKind::Audio,
                MediaKind::Video => str0m::media::MediaKind::Video,
            };
            let simulcast = (!track.spec.layers.is_empty()).then(|| {
                let mut s = Simulcast::new();
                for layer in &track.spec.layers {
                    s.add_send_layer(SimulcastLayer::new(&layer.rid));
                }
                s
            });
            let stream = format!("{}-stream", track.cid);
            track.mid = Some(api.add_media(
                kind,
                Direction::SendOnly,
                Some(stream),
                Some(track.cid.clone()),
                simulcast,
            ));
        }
        if conn.ice_restart {
            api.ice_restart(true);
            conn.ice_restart = false;
        }
        if conn.wants_offer && !api.has_changes() {
            // The SFU wants an offer only to announce sections it filled again (after people
            // left), and str0m makes none without a change: a spare receiving section is the
            // change, and a slot for later.
            conn.recv_mids
                .push(receive_section(&mut api, str0m::media::MediaKind::Video));
        }
        conn.wants_offer = false;
        let Some((offer, pending)) = api.apply() else {
            return Ok(());
        };
        let id = conn.next_offer_id;
        conn.next_offer_id += 1;
        conn.pending = Some((pending, id));
        let message = Req::Offer(lk::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.to_sdp_string(),
            id,
            mid_to_track_id: HashMap::new(),
        });
        conn.ws
            .send(binary(message))
            .await
            .map_err(|e| Flow::Lost(e.to_string()))
    }

    async fn on_signal(&mut self, conn: &mut Connection, message: Resp) -> Flow {
        match message {
            Resp::Answer(answer) => {
                let Some((pending, id)) = conn.pending.take() else {
                    return Flow::Continue;
                };
                if answer.id != id {
                    // An answer to an older offer: keep waiting for ours.
                    conn.pending = Some((pending, id));
                    return Flow::Continue;
                }
                let parsed = match SdpAnswer::from_sdp_string(&answer.sdp) {
                    Ok(a) => a,
                    Err(e) => return Flow::Lost(format!("the SFU's answer is not valid SDP: {e}")),
                };
                if let Err(e) = conn.rtc.sdp_api().accept_answer(pending, parsed) {
                    return Flow::Lost(format!("the SFU's answer was refused: {e}"));
                }
                conn.mid_to_track = answer.mid_to_track_id;
                for track in &mut self.tracks {
                    if let (Some(reply), Some(sid), Some(_)) =
                        (track.reply.as_ref(), track.sid.as_ref(), track.mid)
                    {
                        let _ = reply;
                        if let Some(reply) = track.reply.take() {
                            let _ = reply.send(Ok(sid.clone()));
                        }
                    }
                }
            }
            Resp::Update(update) => {
                let mut events = Vec::new();
                for info in &update.participants {
                    events.extend(self.remotes.apply(info, &conn.own_sid));
                }
                for event in events {
                    self.emit(event).await;
                }
            }
            Resp::TrackPublished(published) => {
                if let Some(track) = self.tracks.iter_mut().find(|t| t.cid == published.cid) {
                    track.sid = published.track.map(|t| t.sid);
                }
            }
            Resp::RequestResponse(refusal) => {
                if let Some(lk::request_response::Request::AddTrack(request)) = refusal.request {
                    if let Some(track) = self.tracks.iter_mut().find(|t| t.cid == request.cid) {
                        if let Some(reply) = track.reply.take() {
                            let _ = reply.send(Err(PublishError::Refused(refusal.message.clone())));
                        }
                    }
                    self.tracks.retain(|t| t.cid != request.cid);
                }
            }
            Resp::MediaSectionsRequirement(need) => {
                conn.extra_audio += need.num_audios;
                conn.extra_video += need.num_videos;
                conn.wants_offer = true;
            }
            Resp::SpeakersChanged(changed) => {
                let events = self
                    .remotes
                    .speakers(&changed, &conn.own_sid, &conn.identity);
                for event in events {
                    self.emit(event).await;
                }
            }
            Resp::ConnectionQuality(update) => {
                let events = self.remotes.quality(&update, &conn.own_sid, &conn.identity);
                for event in events {
                    self.emit(event).await;
                }
            }
            Resp::Leave(leave) => {
                let reason = lk::DisconnectReason::try_from(leave.reason)
                    .map(|r| r.as_str_name().to_owned())
                    .unwrap_or_default();
                if leave.action == lk::leave_request::Action::Disconnect as i32 {
                    return Flow::Ended(format!("the SFU ended the session ({reason})"));
                }
                return Flow::Lost(format!("the SFU asked for a reconnect ({reason})"));
            }
            Resp::RefreshToken(token) => self.credentials.token = token,
            Resp::PongResp(pong) => {
                let rtt = now_millis().saturating_sub(pong.last_ping_timestamp);
                if rtt >= 0 {
                    self.stats.rtt = Some(Duration::from_millis(rtt as u64));
                }
            }
            _ => {}
        }
        Flow::Continue
    }

    async fn on_command(&mut self, conn: &mut Connection, command: Command) -> Flow {
        match command {
            Command::Publish { cid, spec, reply } => {
                let request = add_track_request(&cid, &spec);
                self.queue_publish(cid, spec, reply);
                if conn.ws.send(binary(Req::AddTrack(request))).await.is_err() {
                    return Flow::Lost("the signal connection failed".into());
                }
            }
            Command::Frame { cid, frame } => self.write_frame(conn, &cid, frame),
            Command::Mute { cid, muted } => {
                let Some(track) = self.tracks.iter_mut().find(|t| t.cid == cid) else {
                    return Flow::Continue;
                };
                track.spec.muted = muted;
                if let Some(sid) = track.sid.clone() {
                    if conn
                        .ws
                        .send(binary(Req::Mute(lk::MuteTrackRequest { sid, muted })))
                        .await
                        .is_err()
                    {
                        return Flow::Lost("the signal connection failed".into());
                    }
                }
            }
            Command::Unpublish { cid } => {
                if let Some(pos) = self.tracks.iter().position(|t| t.cid == cid) {
                    let track = self.tracks.remove(pos);
                    // The next offer (at once, or after the one in flight) stops the section;
                    // the SFU then drops the track for everyone.
                    if let Some(mid) = track.mid {
                        conn.stopped_sends.push(mid);
                        conn.wants_offer = true;
                    }
                }
            }
            Command::Subscribe {
                track_sid,
                subscribe,
            } => {
                let message = Req::Subscription(lk::UpdateSubscription {
                    track_sids: vec![track_sid],
                    subscribe,
                    ..Default::default()
                });
                if conn.ws.send(binary(message)).await.is_err() {
                    return Flow::Lost("the signal connection failed".into());
                }
            }
            Command::Quality {
                track_sid,
                width,
                height,
            } => {
                let message = Req::TrackSetting(lk::UpdateTrackSettings {
                    track_sids: vec![track_sid],
                    width,
                    height,
                    ..Default::default()
                });
                if conn.ws.send(binary(message)).await.is_err() {
                    return Flow::Lost("the signal connection failed".into());
                }
            }
            Command::Keyframe { track_sid } => {
                let mid = conn
                    .mid_to_track
                    .iter()
                    .find(|(_, sid)| **sid == track_sid)
                    .map(|(mid, _)| Mid::from(mid.as_str()));
                if let Some(mut writer) = mid.and_then(|mid| conn.rtc.writer(mid)) {
                    let _ = writer.request_keyframe(None, KeyframeRequestKind::Pli);
                }
            }
            Command::Stats(reply) => {
                let mut stats = self.stats.clone();
                stats.tracks = self.track_stats.values().map(|(s, _)| s.clone()).collect();
                let _ = reply.send(stats);
            }
            Command::Participants(reply) => {
                let _ = reply.send(self.remotes.participants());
            }
            Command::SimulateLoss(fraction) => self.receive_loss = fraction,
            Command::SimulateNetworkBlip(duration) => {
                conn.blip_until = Some(Instant::now() + duration);
            }
            Command::Leave(reply) => {
                let _ = conn
                    .ws
                    .send(binary(Req::Leave(lk::LeaveRequest {
                        reason: lk::DisconnectReason::ClientInitiated as i32,
                        ..Default::default()
                    })))
                    .await;
                let _ = conn.ws.close(None).await;
                self.fail_pending_publishes();
                let _ = reply.send(());
                let _ = self.events.try_send(CallEvent::Disconnected {
                    reason: "left the call".into(),
                });
                return Flow::Left;
            }
        }
        Flow::Continue
    }

    fn write_frame(&mut self, conn: &mut Connection, cid: &str, frame: EncodedFrame) {
        let Some(track) = self.tracks.iter_mut().find(|t| t.cid == cid) else {
            return;
        };
        let (Some(mid), true) = (track.mid, track.sid.is_some() && track.reply.is_none()) else {
            self.stats.frames_not_ready += 1;
            return;
        };
        let Some(writer) = conn.rtc.writer(mid) else {
            self.stats.frames_not_ready += 1;
            return;
        };
        let wanted = match (track.spec.kind, track.spec.codec) {
            (MediaKind::Audio, _) => Codec::Opus,
            (MediaKind::Video, VideoCodec::H264) => Codec::H264,
            (MediaKind::Video, VideoCodec::Vp8) => Codec::Vp8,
        };
        let pt = match track.pt {
            Some(pt) => pt,
            None => {
                let found = writer
                    .payload_params()
                    .filter(|p| p.spec().codec == wanted)
                    // For H.264, packetization mode 1 (what browsers send) first.
                    .max_by_key(|p| p.spec().format.packetization_mode.unwrap_or(0))
                    .map(|p| p.pt());
                match found {
                    Some(pt) => {
                        track.pt = Some(pt);
                        pt
                    }
                    None => {
                        self.stats.frames_not_ready += 1;
                        return;
                    }
                }
            }
        };
        let frequency = if wanted == Codec::Opus {
            Frequency::FORTY_EIGHT_KHZ
        } else {
            Frequency::NINETY_KHZ
        };
        let time = MediaTime::from_micros(frame.timestamp.as_micros() as u64).rebase(frequency);
        let mut writer = writer;
        if let Some(rid) = &frame.rid {
            writer = writer.rid(Rid::from(rid.as_str()));
        }
        if let Some(level) = frame.audio_level {
            writer = writer.audio_level(level, level > -50);
        }
        if writer.write(pt, Instant::now(), time, frame.data).is_ok() {
            self.stats.frames_sent += 1;
        } else {
            self.stats.frames_not_ready += 1;
        }
    }
}

/// A section that only receives: a slot the SFU fills with someone's track.
fn receive_section(api: &mut str0m::change::SdpApi<'_>, kind: str0m::media::MediaKind) -> Mid {
    api.add_media(kind, Direction::RecvOnly, None, None, None)
}
