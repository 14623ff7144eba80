//! The media engine: one task, on a thread of its own, owns the UDP socket, every peer
//! connection (a str0m `Rtc` per participant) and every room. Signal connections send it
//! [`Command`]s and receive `SignalResponse`s on their own channel; the engine never waits on
//! them (a full channel means a stuck client, which is removed).

mod info;
mod participant;
pub(crate) mod tap;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_protocol as lk;
use lk::signal_request::Message as Req;
use lk::signal_response::Message as Resp;
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::sdp::{self, Outgoing};
use crate::token::VideoGrant;
use crate::{RoomEvent, SfuLimits, SignalTx};
use info::response;
use participant::{DownTrack, Participant, PublishedTrack, Slot};

pub(crate) use participant::ParticipantKey;

/// Counters, and the engine thread's CPU time.
#[derive(Debug, Clone, Default)]
pub struct EngineStats {
    /// CPU time the engine's thread has used since it started (Linux; `None` elsewhere).
    pub cpu_time: Option<Duration>,
    pub participants: usize,
    pub rooms: usize,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// Datagrams no participant accepted (junk, or late packets of a removed participant).
    pub datagrams_dropped: u64,
    pub frames_in: u64,
    pub frames_forwarded: u64,
    pub keyframe_requests_sent: u64,
}

pub(crate) enum Command {
    Join(Box<JoinCommand>),
    Signal {
        key: ParticipantKey,
        message: Box<Req>,
    },
    SignalClosed {
        key: ParticipantKey,
    },
    Stats(oneshot::Sender<EngineStats>),
    Participants {
        room: String,
        reply: oneshot::Sender<Vec<String>>,
    },
    /// Copies a room's publisher's frames to `frames` until the receiver is dropped.
    Tap {
        room: String,
        frames: mpsc::Sender<tap::TapFrame>,
    },
    /// Asks the tapped publishers of a room for a keyframe of the layer their taps carry.
    TapKeyframe {
        room: String,
    },
    Audience {
        room: String,
        reply: oneshot::Sender<RoomAudience>,
    },
    /// Removes everyone and stops the engine.
    Shutdown,
}

pub(crate) struct JoinCommand {
    pub room: String,
    pub identity: String,
    pub name: String,
    pub grant: VideoGrant,
    pub auto_subscribe: bool,
    pub offer: Option<lk::SessionDescription>,
    /// A resume of this participant (`reconnect` with its sid).
    pub resume_sid: Option<String>,
    pub signal: SignalTx,
    pub reply: oneshot::Sender<Result<ParticipantKey, JoinRefused>>,
}

/// Who is in a room: those who may publish, and those who only watch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomAudience {
    pub publishers: usize,
    /// Participants who may only subscribe, and others see.
    pub subscribers_only: usize,
    /// Hidden participants (anonymous viewers): they only subscribe, and nobody sees them.
    pub hidden: usize,
}

impl RoomAudience {
    /// Everyone who watches without publishing.
    pub fn viewers(&self) -> usize {
        self.subscribers_only + self.hidden
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefused {
    #[error("the call is full ({0} participants)")]
    RoomFull(usize),
    #[error("the session to resume is unknown or has ended")]
    UnknownSession,
}

#[derive(Clone)]
pub(crate) struct EngineHandle {
    tx: mpsc::Sender<Command>,
    thread_id: Arc<AtomicU64>,
}

impl EngineHandle {
    pub(crate) async fn send(&self, command: Command) -> bool {
        self.tx.send(command).await.is_ok()
    }

    pub(crate) fn shutdown(&self) {
        if self.tx.try_send(Command::Shutdown).is_err() {
            tracing::warn!(target: "sfu", "the engine's queue is full or closed: shutdown not delivered");
        }
    }

    pub async fn stats(&self) -> EngineStats {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Command::Stats(reply)).await.is_err() {
            return EngineStats::default();
        }
        let mut stats = answer.await.unwrap_or_default();
        stats.cpu_time = thread_cpu_time(self.thread_id.load(Ordering::Relaxed));
        stats
    }

    pub(crate) async fn audience(&self, room: &str) -> RoomAudience {
        let (reply, answer) = oneshot::channel();
        let command = Command::Audience {
            room: room.to_owned(),
            reply,
        };
        if self.tx.send(command).await.is_err() {
            return RoomAudience::default();
        }
        answer.await.unwrap_or_default()
    }

    pub async fn participants(&self, room: &str) -> Vec<String> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Participants {
            room: room.to_owned(),
            reply,
        };
        if self.tx.send(command).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }
}

/// CPU time of one of this process's threads, from `/proc/self/task/<tid>/schedstat`
/// (nanoseconds on the CPU, first field).
fn thread_cpu_time(tid: u64) -> Option<Duration> {
    if tid == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn current_thread_id() -> u64 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().and_then(|n| n.to_str()?.parse().ok()))
        .unwrap_or(0)
}

pub(crate) fn spawn(
    socket: std::net::UdpSocket,
    announce: Vec<SocketAddr>,
    limits: SfuLimits,
    events: broadcast::Sender<RoomEvent>,
) -> std::io::Result<EngineHandle> {
    let (tx, rx) = mpsc::channel(1024);
    let thread_id = Arc::new(AtomicU64::new(0));
    let tid = thread_id.clone();
    socket.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("confab-sfu".into())
        .spawn(move || {
            tid.store(current_thread_id(), Ordering::Relaxed);
            runtime.block_on(async move {
                let socket = match UdpSocket::from_std(socket) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(target: "sfu", "media socket unusable: {e}");
                        return;
                    }
                };
                Engine::new(socket, announce, limits, events, rx)
                    .run()
                    .await;
            });
        })?;
    Ok(EngineHandle { tx, thread_id })
}

/// What one participant's events ask of the others. Short-lived (one drive's worth), so the
/// frame is kept inline rather than boxed per packet.
#[allow(clippy::large_enum_variant)]
enum Action {
    Forward {
        from: ParticipantKey,
        data: MediaData,
    },
    KeyframeRequest {
        subscriber: ParticipantKey,
        mid: Mid,
        kind: KeyframeRequestKind,
    },
    MediaAdded {
        owner: ParticipantKey,
        mid: Mid,
        kind: MediaKind,
    },
    Connected(ParticipantKey),
}

struct Engine {
    socket: UdpSocket,
    local_addr: SocketAddr,
    announce: Vec<SocketAddr>,
    limits: SfuLimits,
    events: broadcast::Sender<RoomEvent>,
    commands: mpsc::Receiver<Command>,
    participants: HashMap<ParticipantKey, Participant>,
    rooms: HashMap<String, Room>,
    /// Which participant a remote address belongs to, once one accepted it.
    by_addr: HashMap<SocketAddr, ParticipantKey>,
    next_key: u64,
    stats: EngineStats,
    dirty: HashSet<ParticipantKey>,
    last_housekeeping: Instant,
    /// Room -> its taps.
    taps: HashMap<String, Vec<tap::Tap>>,
}

struct Room {
    sid: String,
    created: i64,
    members: Vec<ParticipantKey>,
}

fn random_sid(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let tail: String = (0..12)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}_{tail}")
}

/// Leading bits two addresses share (0 across families).
fn common_prefix(a: std::net::IpAddr, b: std::net::IpAddr) -> u32 {
    match (a, b) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
            (u32::from(a) ^ u32::from(b)).leading_zeros()
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
            (u128::from(a) ^ u128::from(b)).leading_zeros()
        }
        _ => 0,
    }
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Engine {
    fn new(
        socket: UdpSocket,
        announce: Vec<SocketAddr>,
        limits: SfuLimits,
        events: broadcast::Sender<RoomEvent>,
        commands: mpsc::Receiver<Command>,
    ) -> Self {
        let local_addr = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        Self {
            socket,
            local_addr,
            announce,
            limits,
            events,
            commands,
            participants: HashMap::new(),
            rooms: HashMap::new(),
            by_addr: HashMap::new(),
            next_key: 1,
            stats: EngineStats::default(),
            dirty: HashSet::new(),
            last_housekeeping: Instant::now(),
            taps: HashMap::new(),
        }
    }

    async fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.handle_command(command),
                },
                received = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, source)) = received {
                        self.handle_datagram(&buf[..n], source);
                        // Drain what else is queued before driving, so a burst costs one drive.
                        for _ in 0..64 {
                            match self.socket.try_recv_from(&mut buf) {
                                Ok((n, source)) => self.handle_datagram(&buf[..n], source),
                                Err(_) => break,
                            }
                        }
                    }
                },
                _ = tokio::time::sleep_until(deadline.into()) => {},
            }
            self.drive(Instant::now());
        }
        // Clients are asked to reconnect: a restarted SFU (or another node) takes them back.
        for key in self.participants.keys().copied().collect::<Vec<_>>() {
            if let Some(p) = self.participants.get(&key) {
                p.send(response(Resp::Leave(lk::LeaveRequest {
                    reason: lk::DisconnectReason::ServerShutdown as i32,
                    action: lk::leave_request::Action::Reconnect as i32,
                    ..Default::default()
                })));
            }
            self.remove_participant(key, lk::DisconnectReason::ClientInitiated);
        }
    }

    fn next_deadline(&self) -> Instant {
        let housekeeping = self.last_housekeeping + Duration::from_millis(250);
        self.participants
            .values()
            .map(|p| p.next_timeout)
            .fold(housekeeping, Instant::min)
    }

    fn handle_datagram(&mut self, bytes: &[u8], source: SocketAddr) {
        self.stats.datagrams_in += 1;
        let now = Instant::now();
        let Ok(contents) = bytes.try_into() else {
            self.stats.datagrams_dropped += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.destination_for(source),
                contents,
            },
        );
        let key = match self.by_addr.get(&source) {
            Some(key)
                if self
                    .participants
                    .get(key)
                    .is_some_and(|p| p.rtc.accepts(&input)) =>
            {
                Some(*key)
            }
            _ => self
                .participants
                .iter()
                .find(|(_, p)| p.rtc.accepts(&input))
                .map(|(k, _)| *k),
        };
        let Some(key) = key else {
            self.stats.datagrams_dropped += 1;
            return;
        };
        self.by_addr.insert(source, key);
        if let Some(p) = self.participants.get_mut(&key) {
            p.last_input = now;
            if let Err(e) = p.rtc.handle_input(input) {
                tracing::debug!(target: "sfu", participant = %p.sid, "input refused: {e}");
            }
            self.dirty.insert(key);
        }
    }

    /// The address a datagram from `source` was sent to. str0m only accepts traffic to one of
    /// its candidates, and a socket bound to an unspecified address does not say which of the
    /// announced ones was used: a loopback sender used the loopback one, any other the announced
    /// address sharing the longest prefix with it (the same network).
    fn destination_for(&self, source: SocketAddr) -> SocketAddr {
        if !self.local_addr.ip().is_unspecified() {
            return self.local_addr;
        }
        let same_family = self
            .announce
            .iter()
            .filter(|a| a.is_ipv4() == source.is_ipv4());
        if source.ip().is_loopback() {
            if let Some(a) = same_family.clone().find(|a| a.ip().is_loopback()) {
                return *a;
            }
        }
        same_family
            .filter(|a| !a.ip().is_loopback())
            .max_by_key(|a| common_prefix(a.ip(), source.ip()))
            .or_else(|| self.announce.first())
            .copied()
            .unwrap_or(self.local_addr)
    }

    /// Polls every participant that has something due or was touched, until each is idle,
    /// and carries out what their events ask of the others.
    fn drive(&mut self, now: Instant) {
        for (key, p) in self.participants.iter_mut() {
            if p.next_timeout <= now {
                if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(target: "sfu", participant = %p.sid, "timeout refused: {e}");
                }
                self.dirty.insert(*key);
            }
        }
        let mut rounds = 0;
        while !self.dirty.is_empty() && rounds < 16 {
            rounds += 1;
            let keys: Vec<_> = self.dirty.drain().collect();
            let mut actions = Vec::new();
            for key in keys {
                self.poll_participant(key, &mut actions);
            }
            for action in actions {
                self.apply(action);
            }
        }
        if now.duration_since(self.last_housekeeping) >= Duration::from_millis(250) {
            self.last_housekeeping = now;
            self.housekeeping(now);
        }
    }

    fn poll_participant(&mut self, key: ParticipantKey, actions: &mut Vec<Action>) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        // Bounded: a peer connection always ends in a timeout; the bound guards a bug.
        for _ in 0..10_000 {
            if !p.rtc.is_alive() {
                p.next_timeout = Instant::now();
                p.dead = true;
                return;
            }
            match p.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    p.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    self.stats.datagrams_out += 1;
                    // Never wait on the socket: a full send buffer drops the datagram, as a
                    // congested network would, and RTX/NACK recover what matters.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(event)) => p.on_event(key, event, actions, &mut self.stats),
                Err(e) => {
                    tracing::debug!(target: "sfu", participant = %p.sid, "peer connection failed: {e}");
                    p.dead = true;
                    return;
                }
            }
        }
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Forward { from, data } => self.forward(from, data),
            Action::KeyframeRequest {
                subscriber,
                mid,
                kind,
            } => self.relay_keyframe_request(subscriber, mid, kind),
            Action::MediaAdded { owner, mid, kind } => self.media_added(owner, mid, kind),
            Action::Connected(key) => {
                if let Some(p) = self.participants.get_mut(&key) {
                    p.connected = true;
                    p.version += 1;
                }
                self.broadcast_participant(key);
                let room = self.participants.get(&key).map(|p| p.room.clone());
                if let Some(room) = room {
                    self.activate_downtracks_for(key, &room);
                }
            }
        }
    }

    // --- commands ------------------------------------------------------------------------

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Join(join) => self.join(*join),
            Command::Signal { key, message } => self.on_signal(key, *message),
            Command::SignalClosed { key } => {
                let remove = match self.participants.get_mut(&key) {
                    Some(p) => {
                        p.signal = None;
                        p.signal_closed_at = Some(Instant::now());
                        // Without media there is nothing to resume.
                        !p.connected
                    }
                    None => false,
                };
                if remove {
                    self.remove_participant(key, lk::DisconnectReason::ClientInitiated);
                }
            }
            Command::Stats(reply) => {
                let mut stats = self.stats.clone();
                stats.participants = self.participants.len();
                stats.rooms = self.rooms.len();
                let _ = reply.send(stats);
            }
            Command::Shutdown => {}
            Command::Participants { room, reply } => {
                let ids = self
                    .rooms
                    .get(&room)
                    .map(|r| {
                        r.members
                            .iter()
                            .filter_map(|k| self.participants.get(k))
                            .map(|p| p.identity.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = reply.send(ids);
            }
            Command::Tap { room, frames } => {
                self.taps
                    .entry(room)
                    .or_default()
                    .push(tap::Tap::new(frames));
            }
            Command::TapKeyframe { room } => {
                let wants: Vec<(ParticipantKey, String, Option<str0m::media::Rid>)> = self
                    .taps
                    .get(&room)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| Some((t.publisher?, t.video_track.clone()?, t.video_rid)))
                    .collect();
                for (publisher, track, rid) in wants {
                    self.request_keyframe(publisher, &track, rid);
                }
            }
            Command::Audience { room, reply } => {
                let mut audience = RoomAudience::default();
                let members = self.rooms.get(&room).map(|r| r.members.as_slice());
                for p in members
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|k| self.participants.get(k))
                {
                    // LiveKit's grants publish unless told otherwise.
                    if p.grant.hidden {
                        audience.hidden += 1;
                    } else if p.grant.can_publish.unwrap_or(true) {
                        audience.publishers += 1;
                    } else {
                        audience.subscribers_only += 1;
                    }
                }
                let _ = reply.send(audience);
            }
        }
    }

    fn build_rtc(&self, now: Instant) -> Rtc {
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        for addr in &self.announce {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(target: "sfu", "announce address {addr} unusable: {e}"),
            }
        }
        rtc
    }

    fn join(&mut self, join: JoinCommand) {
        let now = Instant::now();
        if let Some(sid) = join.resume_sid.clone() {
            self.resume(join, &sid);
            return;
        }
        // A second session of the same identity replaces the first, as LiveKit does.
        let duplicate = self.rooms.get(&join.room).and_then(|r| {
            r.members.iter().copied().find(|k| {
                self.participants
                    .get(k)
                    .is_some_and(|p| p.identity == join.identity)
            })
        });
        if let Some(old) = duplicate {
            self.remove_participant(old, lk::DisconnectReason::DuplicateIdentity);
        }
        let members = self.rooms.get(&join.room).map_or(0, |r| r.members.len());
        if members >= self.limits.max_participants_per_room {
            let _ = join.reply.send(Err(JoinRefused::RoomFull(
                self.limits.max_participants_per_room,
            )));
            return;
        }
        let key = ParticipantKey(self.next_key);
        self.next_key += 1;
        let room = self.rooms.entry(join.room.clone()).or_insert_with(|| Room {
            sid: random_sid("RM"),
            created: unix_seconds(),
            members: Vec::new(),
        });
        let room_info = lk::Room {
            sid: room.sid.clone(),
            name: join.room.clone(),
            creation_time: room.created,
            num_participants: room.members.len() as u32 + 1,
            ..Default::default()
        };
        let others: Vec<ParticipantKey> = room.members.clone();
        room.members.push(key);

        let rtc = self.build_rtc(now);
        let p = Participant::new(
            random_sid("PA"),
            join.identity,
            join.name,
            join.room.clone(),
            join.grant,
            join.auto_subscribe,
            rtc,
            join.signal,
            now,
        );
        let join_response = lk::JoinResponse {
            room: Some(room_info),
            participant: Some(p.info()),
            other_participants: others
                .iter()
                .filter_map(|k| self.participants.get(k))
                .filter(|o| !o.grant.hidden)
                .map(Participant::info)
                .collect(),
            server_version: crate::SERVER_VERSION.to_owned(),
            ice_servers: Vec::new(),
            subscriber_primary: false,
            client_configuration: Some(lk::ClientConfiguration::default()),
            server_region: "local".to_owned(),
            ping_timeout: self.limits.ping_timeout_secs,
            ping_interval: self.limits.ping_interval_secs,
            server_info: Some(info::server_info()),
            // Empty on purpose: the client then waits for TrackPublished before it offers,
            // so a track's SDP never arrives before the SFU knows the track.
            enabled_publish_codecs: Vec::new(),
            fast_publish: false,
            ..Default::default()
        };
        p.send(response(Resp::Join(join_response)));
        let identity = p.identity.clone();
        let name = p.name.clone();
        let sid = p.sid.clone();
        let hidden = p.grant.hidden;
        let can_subscribe = p.grant.can_subscribe() && p.auto_subscribe;
        self.participants.insert(key, p);
        let _ = join.reply.send(Ok(key));

        if can_subscribe {
            for other in &others {
                self.subscribe_all_of(key, *other);
            }
        }
        if let Some(offer) = join.offer {
            self.on_offer(key, offer);
        }
        if !hidden {
            self.broadcast_participant(key);
            let _ = self.events.send(RoomEvent::ParticipantJoined {
                room: join.room,
                sid,
                identity,
                name,
            });
        }
        self.dirty.insert(key);
    }

    fn resume(&mut self, join: JoinCommand, sid: &str) {
        let found = self
            .participants
            .iter()
            .find(|(_, p)| p.sid == sid && p.identity == join.identity && p.room == join.room)
            .map(|(k, _)| *k);
        let Some(key) = found else {
            let _ = join.signal.try_send(response(Resp::Leave(lk::LeaveRequest {
                reason: lk::DisconnectReason::StateMismatch as i32,
                action: lk::leave_request::Action::Reconnect as i32,
                ..Default::default()
            })));
            let _ = join.reply.send(Err(JoinRefused::UnknownSession));
            return;
        };
        let others: Vec<lk::ParticipantInfo> = self
            .rooms
            .get(&join.room)
            .map(|r| {
                r.members
                    .iter()
                    .filter(|k| **k != key)
                    .filter_map(|k| self.participants.get(k))
                    .filter(|o| !o.grant.hidden)
                    .map(Participant::info)
                    .collect()
            })
            .unwrap_or_default();
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        p.signal = Some(join.signal);
        p.signal_closed_at = None;
        p.send(response(Resp::Reconnect(lk::ReconnectResponse {
            ice_servers: Vec::new(),
            client_configuration: Some(lk::ClientConfiguration::default()),
            server_info: Some(info::server_info()),
            last_message_seq: 0,
        })));
        let mut everyone = others;
        everyone.push(p.info());
        p.send(response(Resp::Update(lk::ParticipantUpdate {
            participants: everyone,
        })));
        let _ = join.reply.send(Ok(key));
        if let Some(offer) = join.offer {
            self.on_offer(key, offer);
        }
    }

    fn on_signal(&mut self, key: ParticipantKey, message: Req) {
        match message {
            Req::Offer(offer) => self.on_offer(key, offer),
            Req::Trickle(trickle) => {
                if let Some(p) = self.participants.get_mut(&key) {
                    p.add_trickle(&trickle.candidate_init);
                }
            }
            Req::AddTrack(request) => self.add_track(key, request),
            Req::Mute(mute) => self.mute(key, &mute.sid, mute.muted),
            Req::Subscription(sub) => self.update_subscription(key, sub),
            Req::TrackSetting(setting) => {
                if let Some(p) = self.participants.get_mut(&key) {
                    p.apply_track_setting(&setting);
                }
            }
            Req::Leave(_) => self.remove_participant(key, lk::DisconnectReason::ClientInitiated),
            // Accepted and not needed by this SFU: answers (it never offers), layer updates
            // (layers come from AddTrack), state sync (the SFU keeps its own state), metadata.
            _ => {}
        }
        self.dirty.insert(key);
    }

    fn on_offer(&mut self, key: ParticipantKey, offer: lk::SessionDescription) {
        let sids = self.participant_sids();
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let parsed = match str0m::change::SdpOffer::from_sdp_string(&offer.sdp) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(target: "sfu", participant = %p.sid, "unparsable offer: {e}");
                p.refuse(
                    None,
                    lk::request_response::Reason::UnclassifiedError,
                    "the offer could not be accepted",
                );
                return;
            }
        };
        let answer = match p.rtc.sdp_api().accept_offer(parsed) {
            Ok(a) => a.to_sdp_string(),
            Err(e) => {
                tracing::debug!(target: "sfu", participant = %p.sid, "offer refused: {e}");
                p.refuse(
                    None,
                    lk::request_response::Reason::UnclassifiedError,
                    "the offer could not be accepted",
                );
                return;
            }
        };
        p.offer_requested = false;
        // Sections the client receives on (it offered recvonly; str0m answered sendonly) are
        // the slots subscriptions fill.
        let sections = sdp::sections(&answer);
        let sections_now = sections.clone();
        // A section the client stopped receiving on (inactive, or stopped) is no slot any more;
        // its subscription waits for another.
        p.retain_slots(|mid| {
            sections
                .iter()
                .any(|s| s.mid == mid && matches!(s.direction, sdp::Direction::SendOnly))
        });
        for section in sections {
            let kind = match section.kind {
                sdp::SectionKind::Audio => MediaKind::Audio,
                sdp::SectionKind::Video => MediaKind::Video,
                _ => continue,
            };
            if matches!(section.direction, sdp::Direction::SendOnly)
                && !p.slots.iter().any(|s| s.mid.to_string() == section.mid)
            {
                p.slots.push(Slot {
                    mid: Mid::from(section.mid.as_str()),
                    kind,
                    downtrack: None,
                });
            }
        }
        // The publisher's codec first on each section it publishes on.
        let mut answer = answer;
        for section in &sections_now {
            if !matches!(section.direction, sdp::Direction::RecvOnly) {
                continue;
            }
            let mid = Mid::from(section.mid.as_str());
            let cid = p.rtc.media(mid).map(|m| m.track_id().to_owned());
            let codec = cid.and_then(|cid| {
                p.tracks
                    .iter()
                    .find(|t| t.cid == cid && t.kind == MediaKind::Video)
                    .map(|t| t.info.mime_type.trim_start_matches("video/").to_owned())
            });
            if let Some(codec) = codec {
                answer = sdp::prefer_codec(&answer, &section.mid, &codec);
            }
        }
        // A published track whose section the client no longer sends on (set inactive, or
        // gone) is unpublished: the others lose it.
        let unpublished: Vec<String> = p
            .tracks
            .iter()
            .filter(|t| {
                t.mid.is_some_and(|mid| {
                    !sections_now.iter().any(|s| {
                        s.mid == mid.to_string()
                            && matches!(
                                s.direction,
                                sdp::Direction::RecvOnly | sdp::Direction::SendRecv
                            )
                    })
                })
            })
            .map(|t| t.info.sid.clone())
            .collect();
        if !unpublished.is_empty() {
            p.tracks.retain(|t| !unpublished.contains(&t.info.sid));
            p.version += 1;
        }
        p.assign_slots();
        let plan = p.answer_plan(&sids);
        let mid_to_track_id = plan
            .iter()
            .filter_map(|(mid, o)| match o {
                Outgoing::Track { track, .. } => Some((mid.clone(), track.clone())),
                Outgoing::Idle => None,
            })
            .collect();
        let sdp_text = sdp::rewrite_answer(&answer, &plan);
        p.send(response(Resp::Answer(lk::SessionDescription {
            r#type: "answer".to_owned(),
            sdp: sdp_text,
            id: offer.id,
            mid_to_track_id,
        })));
        p.mark_announced();
        p.request_slots_if_needed();
        let needs_keyframes: Vec<(ParticipantKey, String)> = p
            .downtracks
            .iter()
            .filter(|d| d.announced && d.needs_keyframe)
            .map(|d| (d.publisher, d.track_sid.clone()))
            .collect();
        for (publisher, track) in needs_keyframes {
            self.request_keyframe(publisher, &track, None);
        }
        for track_sid in unpublished {
            self.track_unpublished(key, &track_sid);
        }
    }

    fn participant_sids(&self) -> HashMap<ParticipantKey, String> {
        self.participants
            .iter()
            .map(|(k, p)| (*k, p.sid.clone()))
            .collect()
    }

    fn add_track(&mut self, key: ParticipantKey, request: lk::AddTrackRequest) {
        let max_tracks = self.limits.max_tracks_per_participant;
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let source = info::source_name(request.source);
        let allowed = if request.source == lk::TrackSource::Unknown as i32 {
            p.grant.can_publish()
        } else {
            p.grant.allows_source(source)
        };
        if !allowed {
            p.refuse(
                Some(lk::request_response::Request::AddTrack(request)),
                lk::request_response::Reason::NotAllowed,
                "this participant may not publish that source",
            );
            return;
        }
        if p.tracks.len() >= max_tracks || p.tracks.iter().any(|t| t.cid == request.cid) {
            p.refuse(
                Some(lk::request_response::Request::AddTrack(request)),
                lk::request_response::Reason::LimitExceeded,
                "too many tracks, or a track with this cid already exists",
            );
            return;
        }
        let track = PublishedTrack::from_request(&request, random_sid("TR"));
        let published = lk::TrackPublishedResponse {
            cid: request.cid.clone(),
            track: Some(track.info.clone()),
        };
        p.tracks.push(track);
        p.send(response(Resp::TrackPublished(published)));
    }

    fn media_added(&mut self, owner: ParticipantKey, mid: Mid, kind: MediaKind) {
        let Some(p) = self.participants.get_mut(&owner) else {
            return;
        };
        let track_id = p
            .rtc
            .media(mid)
            .map(|m| m.track_id().to_owned())
            .unwrap_or_default();
        let Some(track) = p
            .tracks
            .iter_mut()
            .find(|t| t.mid.is_none() && t.cid == track_id && t.kind == kind)
        else {
            // A section whose track was never announced with AddTrack: its media is ignored.
            tracing::debug!(target: "sfu", participant = %p.sid, "media {mid} matches no announced track");
            return;
        };
        track.mid = Some(mid);
        track.info.mid = mid.to_string();
        p.version += 1;
        let track_sid = track.info.sid.clone();
        let room = p.room.clone();
        self.broadcast_participant(owner);
        let members = self.room_members(&room);
        for member in members {
            if member == owner {
                continue;
            }
            let auto = self
                .participants
                .get(&member)
                .is_some_and(|m| m.auto_subscribe && m.grant.can_subscribe());
            if auto {
                self.subscribe(member, owner, &track_sid);
            }
        }
    }

    /// Subscribes `subscriber` to every published track of `publisher`.
    fn subscribe_all_of(&mut self, subscriber: ParticipantKey, publisher: ParticipantKey) {
        let tracks: Vec<String> = self
            .participants
            .get(&publisher)
            .map(|p| {
                p.tracks
                    .iter()
                    .filter(|t| t.mid.is_some())
                    .map(|t| t.info.sid.clone())
                    .collect()
            })
            .unwrap_or_default();
        for track in tracks {
            self.subscribe(subscriber, publisher, &track);
        }
    }

    fn subscribe(
        &mut self,
        subscriber: ParticipantKey,
        publisher: ParticipantKey,
        track_sid: &str,
    ) {
        let Some(kind) = self
            .participants
            .get(&publisher)
            .and_then(|p| p.tracks.iter().find(|t| t.info.sid == track_sid))
            .map(|t| t.kind)
        else {
            return;
        };
        let Some(s) = self.participants.get_mut(&subscriber) else {
            return;
        };
        if !s.grant.can_subscribe()
            || s.downtracks
                .iter()
                .any(|d| d.publisher == publisher && d.track_sid == track_sid)
        {
            return;
        }
        s.downtracks
            .push(DownTrack::new(publisher, track_sid.to_owned(), kind));
        s.assign_slots();
        // Either free slots were filled (an offer carries their names) or more are needed.
        s.request_offer();
        self.dirty.insert(subscriber);
    }

    fn unsubscribe(
        &mut self,
        subscriber: ParticipantKey,
        publisher: ParticipantKey,
        track_sid: &str,
    ) {
        if let Some(s) = self.participants.get_mut(&subscriber) {
            if s.drop_downtrack(publisher, track_sid) {
                s.request_offer();
            }
        }
    }

    fn update_subscription(&mut self, key: ParticipantKey, sub: lk::UpdateSubscription) {
        let mut sids: Vec<String> = sub.track_sids.clone();
        for pt in &sub.participant_tracks {
            sids.extend(pt.track_sids.iter().cloned());
        }
        for sid in sids.iter().take(64) {
            let owner = self
                .participants
                .iter()
                .find(|(k, p)| **k != key && p.tracks.iter().any(|t| t.info.sid == *sid))
                .map(|(k, _)| *k);
            let Some(owner) = owner else {
                if let Some(p) = self.participants.get(&key) {
                    p.send(response(Resp::SubscriptionResponse(
                        lk::SubscriptionResponse {
                            track_sid: sid.clone(),
                            err: lk::SubscriptionError::SeTrackNotfound as i32,
                        },
                    )));
                }
                continue;
            };
            if sub.subscribe {
                self.subscribe(key, owner, sid);
            } else {
                self.unsubscribe(key, owner, sid);
            }
        }
    }

    fn mute(&mut self, key: ParticipantKey, track_sid: &str, muted: bool) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let Some(track) = p.tracks.iter_mut().find(|t| t.info.sid == track_sid) else {
            p.refuse(
                Some(lk::request_response::Request::Mute(lk::MuteTrackRequest {
                    sid: track_sid.to_owned(),
                    muted,
                })),
                lk::request_response::Reason::NotFound,
                "no such track",
            );
            return;
        };
        if track.info.muted == muted {
            return;
        }
        track.info.muted = muted;
        p.version += 1;
        self.broadcast_participant(key);
    }

    /// Sends `key`'s current info to everyone in its room (itself included, as LiveKit does).
    /// `owner` stopped publishing `track_sid`: subscribers drop it (their section is freed)
    /// and everyone gets the owner's track list without it.
    fn track_unpublished(&mut self, owner: ParticipantKey, track_sid: &str) {
        let Some(room) = self.participants.get(&owner).map(|p| p.room.clone()) else {
            return;
        };
        tracing::debug!(target: "sfu", track = %track_sid, "track unpublished");
        for t in self.taps.get_mut(&room).into_iter().flatten() {
            t.track_gone(track_sid);
        }
        let members = self.room_members(&room);
        for member in members {
            if member != owner {
                self.unsubscribe(member, owner, track_sid);
                self.dirty.insert(member);
            }
        }
        self.broadcast_participant(owner);
        self.dirty.insert(owner);
    }

    /// Everyone in `room` now (a copy: the loops over it change the engine).
    fn room_members(&self, room: &str) -> Vec<ParticipantKey> {
        self.rooms
            .get(room)
            .map(|r| r.members.clone())
            .unwrap_or_default()
    }

    fn broadcast_participant(&mut self, key: ParticipantKey) {
        let Some(p) = self.participants.get(&key) else {
            return;
        };
        let info = p.info();
        let hidden = p.grant.hidden;
        let Some(room) = self.rooms.get(&p.room) else {
            return;
        };
        for member in &room.members {
            if hidden && *member != key {
                continue;
            }
            if let Some(m) = self.participants.get(member) {
                m.send(response(Resp::Update(lk::ParticipantUpdate {
                    participants: vec![info.clone()],
                })));
            }
        }
    }

    fn activate_downtracks_for(&mut self, key: ParticipantKey, _room: &str) {
        let wants: Vec<(ParticipantKey, String)> = self
            .participants
            .get(&key)
            .map(|p| {
                p.downtracks
                    .iter()
                    .filter(|d| d.needs_keyframe)
                    .map(|d| (d.publisher, d.track_sid.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (publisher, track) in wants {
            self.request_keyframe(publisher, &track, None);
        }
    }

    // --- media ---------------------------------------------------------------------------

    fn forward(&mut self, from: ParticipantKey, data: MediaData) {
        self.stats.frames_in += 1;
        let Some(publisher) = self.participants.get_mut(&from) else {
            return;
        };
        let Some(track) = publisher
            .tracks
            .iter_mut()
            .find(|t| t.mid == Some(data.mid))
        else {
            return;
        };
        let keyframe = participant::is_keyframe(&data);
        track.saw_layer(data.rid, keyframe, data.network_time);
        let track_sid = track.info.sid.clone();
        let kind = track.kind;
        let layers = track.layer_sizes();
        let active_rids = track.active_rids(data.network_time);
        if kind == MediaKind::Audio {
            if let Some(level) = data.ext_vals.audio_level {
                publisher.observe_audio_level(level, data.network_time);
            }
        }
        let discontinuity = !data.contiguous && kind == MediaKind::Video;
        let room = publisher.room.clone();
        if discontinuity {
            self.request_keyframe(from, &track_sid, data.rid);
        }
        let members = self.room_members(&room);
        let mut wanted_keyframes: Vec<Option<str0m::media::Rid>> = Vec::new();
        for member in members {
            if member == from {
                continue;
            }
            let Some(s) = self.participants.get_mut(&member) else {
                continue;
            };
            if !s.connected {
                continue;
            }
            let Some(down) = s
                .downtracks
                .iter_mut()
                .find(|d| d.publisher == from && d.track_sid == track_sid)
            else {
                continue;
            };
            let Some(mid) = down.writable_mid() else {
                continue;
            };
            match down.accept(&data, keyframe, &layers, &active_rids) {
                participant::Decision::Drop => continue,
                participant::Decision::DropWantKeyframe(rid) => {
                    wanted_keyframes.push(rid);
                    continue;
                }
                participant::Decision::Write => {}
            }
            let time = down.rebase(data.time);
            let Some(writer) = s.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = down.outgoing_pt(&writer, &data.params) else {
                continue;
            };
            let mut writer = writer;
            if let Some(level) = data.ext_vals.audio_level {
                writer = writer.audio_level(level, data.ext_vals.voice_activity.unwrap_or(false));
            }
            if writer
                .write(pt, data.network_time, time, data.data.clone())
                .is_ok()
            {
                self.stats.frames_forwarded += 1;
                s.frames_out += 1;
            }
            self.dirty.insert(member);
        }
        wanted_keyframes.extend(self.feed_taps(
            from,
            &room,
            &track_sid,
            &active_rids,
            keyframe,
            &data,
        ));
        wanted_keyframes.sort_by_key(|r| r.map(|r| r.to_string()));
        wanted_keyframes.dedup();
        for rid in wanted_keyframes {
            self.request_keyframe(from, &track_sid, rid);
        }
    }

    /// Copies a frame to the room's taps; returns the layers they wait for a keyframe of.
    fn feed_taps(
        &mut self,
        from: ParticipantKey,
        room: &str,
        track_sid: &str,
        active_rids: &[str0m::media::Rid],
        keyframe: bool,
        data: &MediaData,
    ) -> Vec<Option<str0m::media::Rid>> {
        let Some(taps) = self.taps.get_mut(room) else {
            return Vec::new();
        };
        taps.retain(|t| !t.frames.is_closed());
        if taps.is_empty() {
            self.taps.remove(room);
            return Vec::new();
        }
        let Some(publisher) = self.participants.get(&from) else {
            return Vec::new();
        };
        let Some(track) = publisher.tracks.iter().find(|t| t.info.sid == track_sid) else {
            return Vec::new();
        };
        let forwarded = tap::Forwarded {
            from,
            publisher_sid: &publisher.sid,
            track,
            active_rids,
            keyframe,
            data,
        };
        taps.iter_mut()
            .filter_map(|t| tap::feed(t, &forwarded))
            .collect()
    }

    /// Asks a publisher for a keyframe of one layer (all layers when `rid` is `None`),
    /// at most once per `keyframe_request_interval` per layer.
    fn request_keyframe(
        &mut self,
        publisher: ParticipantKey,
        track_sid: &str,
        rid: Option<str0m::media::Rid>,
    ) {
        let interval = self.limits.keyframe_request_interval;
        let Some(p) = self.participants.get_mut(&publisher) else {
            return;
        };
        let Some(track) = p.tracks.iter_mut().find(|t| t.info.sid == track_sid) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        let Some(mid) = track.mid else {
            return;
        };
        let now = Instant::now();
        let rids: Vec<Option<str0m::media::Rid>> = match rid {
            Some(r) => vec![Some(r)],
            None if track.rids.is_empty() => vec![None],
            None => track.rids.iter().map(|r| Some(*r)).collect(),
        };
        for rid in rids {
            if !track.keyframe_request_due(rid, now, interval) {
                continue;
            }
            if let Some(mut writer) = p.rtc.writer(mid) {
                if writer
                    .request_keyframe(rid, KeyframeRequestKind::Pli)
                    .is_ok()
                {
                    self.stats.keyframe_requests_sent += 1;
                }
            }
        }
        self.dirty.insert(publisher);
    }

    fn relay_keyframe_request(
        &mut self,
        subscriber: ParticipantKey,
        mid: Mid,
        _kind: KeyframeRequestKind,
    ) {
        let Some(s) = self.participants.get_mut(&subscriber) else {
            return;
        };
        let Some(down) = s.downtracks.iter_mut().find(|d| d.mid == Some(mid)) else {
            return;
        };
        let publisher = down.publisher;
        let track = down.track_sid.clone();
        let rid = down.current_rid;
        self.request_keyframe(publisher, &track, rid);
    }

    // --- housekeeping --------------------------------------------------------------------

    fn housekeeping(&mut self, now: Instant) {
        let mut to_remove = Vec::new();
        for (key, p) in &self.participants {
            let silent = now.duration_since(p.last_input);
            let gone = p.dead
                || (!p.connected && now.duration_since(p.joined_at) > self.limits.connect_timeout)
                || (p.connected && silent > self.limits.transport_timeout)
                || p.signal_closed_at
                    .is_some_and(|t| now.duration_since(t) > self.limits.transport_timeout)
                || p.signal_stuck.get();
            if gone {
                to_remove.push(*key);
            }
        }
        for key in to_remove {
            let reason = if self
                .participants
                .get(&key)
                .is_some_and(|p| p.signal_stuck.get())
            {
                lk::DisconnectReason::SignalClose
            } else {
                lk::DisconnectReason::ConnectionTimeout
            };
            self.remove_participant(key, reason);
        }
        self.update_speakers(now);
        self.update_quality(now);
        // Forget address mappings of participants that are gone.
        let participants = &self.participants;
        self.by_addr.retain(|_, k| participants.contains_key(k));
    }

    fn update_speakers(&mut self, now: Instant) {
        self.room_round(
            |p| p.speaking_change(now),
            |mut speakers| {
                speakers.sort_by(|a, b| b.level.total_cmp(&a.level));
                Resp::SpeakersChanged(lk::SpeakersChanged { speakers })
            },
        );
    }

    fn update_quality(&mut self, now: Instant) {
        self.room_round(
            |p| p.quality_due(now),
            |updates| Resp::ConnectionQuality(lk::ConnectionQualityUpdate { updates }),
        );
    }

    /// For each room: collects each member's news (`news`) and, when any has some, sends every
    /// member the one message `wrap` makes of them all.
    fn room_round<T>(
        &mut self,
        mut news: impl FnMut(&mut Participant) -> Option<T>,
        wrap: impl Fn(Vec<T>) -> Resp,
    ) {
        for room in self.rooms.values() {
            let mut items = Vec::new();
            for key in &room.members {
                if let Some(item) = self.participants.get_mut(key).and_then(&mut news) {
                    items.push(item);
                }
            }
            if items.is_empty() {
                continue;
            }
            let message = response(wrap(items));
            for key in &room.members {
                if let Some(p) = self.participants.get(key) {
                    p.send(message.clone());
                }
            }
        }
    }

    fn remove_participant(&mut self, key: ParticipantKey, reason: lk::DisconnectReason) {
        let Some(mut p) = self.participants.remove(&key) else {
            return;
        };
        if reason != lk::DisconnectReason::ClientInitiated {
            p.send(response(Resp::Leave(lk::LeaveRequest {
                reason: reason as i32,
                action: lk::leave_request::Action::Disconnect as i32,
                ..Default::default()
            })));
        }
        p.signal = None;
        p.rtc.disconnect();
        let mut info = p.info();
        info.state = lk::participant_info::State::Disconnected as i32;
        info.disconnect_reason = reason as i32;
        info.version += 1;
        info.tracks.clear();
        let room_name = p.room.clone();
        for t in self.taps.get_mut(&room_name).into_iter().flatten() {
            t.release(key);
        }
        let mut room_empty = false;
        if let Some(room) = self.rooms.get_mut(&room_name) {
            room.members.retain(|k| *k != key);
            room_empty = room.members.is_empty();
            for member in room.members.clone() {
                if let Some(m) = self.participants.get_mut(&member) {
                    if m.drop_downtracks_of(key) {
                        m.request_offer();
                    }
                    if !p.grant.hidden {
                        m.send(response(Resp::Update(lk::ParticipantUpdate {
                            participants: vec![info.clone()],
                        })));
                    }
                    self.dirty.insert(member);
                }
            }
        }
        if room_empty {
            self.rooms.remove(&room_name);
        }
        if !p.grant.hidden {
            let _ = self.events.send(RoomEvent::ParticipantLeft {
                room: room_name,
                sid: p.sid.clone(),
                identity: p.identity.clone(),
            });
        }
        tracing::debug!(target: "sfu", participant = %p.sid, ?reason, "participant removed");
    }
}

impl From<IceConnectionState> for participant::IceState {
    fn from(s: IceConnectionState) -> Self {
        match s {
            IceConnectionState::Disconnected => participant::IceState::Disconnected,
            IceConnectionState::Connected | IceConnectionState::Completed => {
                participant::IceState::Connected
            }
            _ => participant::IceState::Connecting,
        }
    }
}
