// What livekit-client.test.mjs does in the browser, as a small API on window.interop. It uses
// only livekit-client's public API (LivekitClient, from the npm package's UMD build) and the
// standard WebRTC statistics.
'use strict';

(() => {
  const { Room, RoomEvent, Track, setLogLevel } = LivekitClient;

  /** Everything the room reported, with a time in ms since the page loaded, for the test's log. */
  const events = [];
  const note = (event, detail = {}) => events.push({ t: Math.round(performance.now()), event, ...detail });

  /** Every outbound video size the encoder reported (see localVideo). */
  const sentSizes = new Set();

  let room = null;

  function watch(r) {
    r.on(RoomEvent.ConnectionStateChanged, (state) => note('connection_state', { state }))
      .on(RoomEvent.SignalConnected, () => note('signal_connected'))
      .on(RoomEvent.Reconnecting, () => note('reconnecting'))
      .on(RoomEvent.Reconnected, () => note('reconnected'))
      .on(RoomEvent.Disconnected, (reason) => note('disconnected', { reason }))
      .on(RoomEvent.ParticipantConnected, (p) => note('participant_connected', { identity: p.identity, sid: p.sid }))
      .on(RoomEvent.ParticipantDisconnected, (p) => note('participant_disconnected', { identity: p.identity }))
      .on(RoomEvent.TrackPublished, (pub, p) => note('track_published', { identity: p.identity, kind: pub.kind, sid: pub.trackSid, mime: pub.mimeType }))
      .on(RoomEvent.TrackSubscribed, (track, pub, p) => {
        note('track_subscribed', { identity: p.identity, kind: track.kind, sid: pub.trackSid, mime: pub.mimeType });
        const el = track.attach();
        el.dataset.identity = p.identity;
        el.dataset.kind = track.kind;
        document.getElementById('remote').append(el);
      })
      .on(RoomEvent.TrackSubscriptionFailed, (sid, p, reason) => note('track_subscription_failed', { identity: p?.identity, sid, reason: String(reason) }))
      .on(RoomEvent.TrackUnsubscribed, (track, pub, p) => note('track_unsubscribed', { identity: p.identity, sid: pub.trackSid }))
      .on(RoomEvent.LocalTrackPublished, (pub) => note('local_track_published', { kind: pub.kind, sid: pub.trackSid, mime: pub.mimeType }))
      .on(RoomEvent.MediaDevicesError, (err) => note('media_devices_error', { error: String(err) }));
  }

  /** The first inbound-rtp (or outbound-rtp) entries of a stats report, with their codec. */
  function rtpStats(report, type) {
    const out = [];
    if (!report) return out;
    for (const s of report.values()) {
      if (s.type !== type) continue;
      const codec = s.codecId ? report.get(s.codecId)?.mimeType : undefined;
      out.push({ ...s, codec });
    }
    return out;
  }

  /** An error as text, with livekit-client's reason when it has one (a ConnectionError's). */
  const describe = (err) => {
    const reason = err?.reasonName ? ` (${err.reasonName}${err.status ? `, status ${err.status}` : ''})` : '';
    return `${err?.name ?? 'Error'}: ${err?.message ?? String(err)}${reason}`;
  };

  /** Calls started by `start`, by name: {state: pending|done|failed, value, error}. */
  const tasks = {};

  window.interop = {
    events,

    /**
     * Starts `interop[name](...args)` and returns at once: the test polls `result(name)`, so a
     * call may take longer than one WebDriver script may run.
     */
    start(name, args) {
      const task = { state: 'pending' };
      tasks[name] = task;
      window.interop[name](...args).then(
        (value) => Object.assign(task, { state: 'done', value }),
        (err) => Object.assign(task, { state: 'failed', error: describe(err) }),
      );
    },

    result(name) {
      return tasks[name] ?? null;
    },

    /** Connects to the SFU; resolves with who we are once the peer connection is up. */
    async connect(url, token, { logLevel = 'info' } = {}) {
      setLogLevel(logLevel);
      room = new Room();
      watch(room);
      note('connecting', { url });
      await room.connect(url, token);
      note('connected');
      return {
        identity: room.localParticipant.identity,
        sid: room.localParticipant.sid,
        room: room.name,
        serverVersion: room.serverInfo?.version ?? null,
      };
    },

    /** Publishes the fake camera and microphone with livekit-client's defaults. */
    async publish() {
      await room.localParticipant.enableCameraAndMicrophone();
      return room.localParticipant.getTrackPublications().map((p) => ({ kind: p.kind, sid: p.trackSid, mime: p.mimeType ?? null, source: p.source }));
    },

    /**
     * The published video: the capture size, each simulcast encoding and its size, the layers
     * the server was told about, and what the encoder reports now. Every size the encoder
     * reported so far is kept in `sentSizes`, since a keyframe the other side received may come
     * from before a resolution change (Chromium lowers it under CPU load).
     */
    async localVideo() {
      const pub = room.localParticipant.getTrackPublication(Track.Source.Camera);
      const track = pub?.track;
      if (!track) return null;
      const settings = track.mediaStreamTrack.getSettings();
      const encodings = (track.sender?.getParameters().encodings ?? []).map((e) => ({
        rid: e.rid ?? null,
        active: e.active,
        scaleResolutionDownBy: e.scaleResolutionDownBy ?? 1,
        maxBitrate: e.maxBitrate ?? null,
        width: Math.floor(settings.width / (e.scaleResolutionDownBy ?? 1)),
        height: Math.floor(settings.height / (e.scaleResolutionDownBy ?? 1)),
      }));
      const outbound = rtpStats(await track.sender?.getStats(), 'outbound-rtp').map((s) => {
        if (s.frameWidth) sentSizes.add(`${s.frameWidth}x${s.frameHeight}`);
        return {
          rid: s.rid ?? null,
          codec: s.codec,
          frameWidth: s.frameWidth,
          frameHeight: s.frameHeight,
          framesEncoded: s.framesEncoded,
          keyFramesEncoded: s.keyFramesEncoded,
          packetsSent: s.packetsSent,
          qualityLimitationReason: s.qualityLimitationReason,
        };
      });
      return {
        sid: pub.trackSid,
        mime: pub.mimeType ?? null,
        capture: { width: settings.width, height: settings.height, frameRate: settings.frameRate },
        encodings,
        layers: (pub.trackInfo?.layers ?? []).map((l) => ({ quality: l.quality, width: l.width, height: l.height })),
        outbound,
        sentSizes: [...sentSizes],
      };
    },

    /**
     * The remote participant `identity` as this page sees it: its publications, whether each
     * is subscribed, and its receiver's inbound-rtp statistics.
     */
    async remote(identity) {
      const p = room.getParticipantByIdentity(identity);
      if (!p) return null;
      const tracks = [];
      for (const pub of p.trackPublications.values()) {
        const entry = { kind: pub.kind, sid: pub.trackSid, mime: pub.mimeType ?? null, subscribed: pub.isSubscribed, source: pub.source };
        const track = pub.track;
        if (track) {
          const [s] = rtpStats(await track.getRTCStatsReport(), 'inbound-rtp');
          if (s) {
            Object.assign(entry, {
              codec: s.codec,
              packetsReceived: s.packetsReceived,
              packetsLost: s.packetsLost,
              bytesReceived: s.bytesReceived,
              framesReceived: s.framesReceived,
              framesDecoded: s.framesDecoded,
              keyFramesDecoded: s.keyFramesDecoded,
              pliCount: s.pliCount,
              nackCount: s.nackCount,
              frameWidth: s.frameWidth,
              frameHeight: s.frameHeight,
              framesPerSecond: s.framesPerSecond,
              decoderImplementation: s.decoderImplementation,
            });
          }
        }
        tracks.push(entry);
      }
      return { sid: p.sid, identity: p.identity, tracks };
    },

    async disconnect() {
      if (room) await room.disconnect();
      note('left');
    },
  };
})();
