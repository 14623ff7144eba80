// Decoding a remote video track with WebCodecs. The backend sends each track's frames still
// encoded, one binary channel message each (docs/call-media.md); the page decodes only what it
// shows. A TrackDecoder hands each decoded VideoFrame to whoever draws it, and says when this
// webview cannot decode the track, so its tile can say so instead of staying black.

/** The header's codec byte: the WebCodecs codec string, and the name people know. */
export const CODECS = Object.freeze({
  // Annex B (start codes, parameter sets in band): configured without a `description`.
  1: Object.freeze({ codec: 'avc1.42E01F', name: 'H.264' }),
  2: Object.freeze({ codec: 'vp8', name: 'VP8' }),
});

/** The media view's codec names, as header codec bytes. */
export const CODEC_IDS = Object.freeze({ 'video/H264': 1, 'video/VP8': 2 });

const HEADER_BYTES = 16;
const KIND_VIDEO_FRAME = 1;
const FLAG_KEYFRAME = 1;
const FLAG_LOST = 2;

// WebKit can accept a codec and then never output a frame (seen with VP8): after this long with
// keyframes going in and nothing coming out, the track counts as one this webview cannot show.
const NO_FRAME_MS = 3000;
// Errors in a row, before any frame came out, that mean the codec cannot be decoded here.
const MAX_FAILURES = 3;
// A decoder this far behind is not keeping up: start again from the next keyframe, so the
// picture is late by at most this many frames instead of falling ever further behind.
const MAX_BACKLOG = 30;
// Frames kept (from the last keyframe) while the support check runs, so the first keyframe a
// new subscription gets is not thrown away.
const MAX_HELD = 90;
// While waiting for a keyframe, ask the publisher again this often (a publisher may send no
// keyframe of its own for minutes; the request or the keyframe may be lost).
const KEYFRAME_ASK_MS = 1000;

const utf8 = new TextDecoder();
const KIND_PICTURE = 2;

/**
 * A picture the backend decoded (message 2, after decode_video_in_rust) as `{ trackSid, image }`
 * (an ImageData); null when the message is not one or is cut short.
 */
export function parsePicture(bytes) {
  if (bytes.length < HEADER_BYTES || bytes[0] !== KIND_PICTURE) return null;
  const sidLength = bytes[3];
  const header = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const width = header.getUint32(4, true);
  const height = header.getUint32(8, true);
  const start = HEADER_BYTES + sidLength;
  if (width === 0 || height === 0 || bytes.length !== start + width * height * 4) return null;
  const pixels = new Uint8ClampedArray(bytes.buffer, bytes.byteOffset + start, width * height * 4);
  return {
    trackSid: utf8.decode(bytes.subarray(HEADER_BYTES, start)),
    image: new ImageData(pixels, width, height),
  };
}

/** Whether this webview needs the backend to decode H.264 (no VideoDecoder, or no H.264 in it). */
export async function needsDecodeInRust() {
  return !(await canDecode(1));
}

/**
 * One binary channel message (a Uint8Array) as `{ trackSid, codecId, keyframe, lost, timestamp,
 * data }`; null when it is not a video frame or is cut short.
 */
export function parseFrame(bytes) {
  if (bytes.length < HEADER_BYTES || bytes[0] !== KIND_VIDEO_FRAME) return null;
  const sidLength = bytes[3];
  if (bytes.length < HEADER_BYTES + sidLength) return null;
  const header = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const micros = header.getFloat64(4, true);
  return {
    codecId: bytes[1],
    keyframe: (bytes[2] & FLAG_KEYFRAME) !== 0,
    lost: (bytes[2] & FLAG_LOST) !== 0,
    // EncodedVideoChunk wants whole microseconds.
    timestamp: Number.isFinite(micros) ? Math.round(micros) : 0,
    trackSid: utf8.decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + sidLength)),
    data: bytes.subarray(HEADER_BYTES + sidLength),
  };
}

const configFor = (codecId) => ({ codec: CODECS[codecId].codec, optimizeForLatency: true });

// isConfigSupported answers per codec, once per page.
const support = new Map();

/** Resolves to whether this webview can decode codec `codecId` (a header codec byte). */
export function canDecode(codecId) {
  const entry = CODECS[codecId];
  if (!entry || typeof VideoDecoder === 'undefined' || typeof EncodedVideoChunk === 'undefined') {
    return Promise.resolve(false);
  }
  if (!support.has(entry.codec)) {
    let check;
    try {
      check = VideoDecoder.isConfigSupported(configFor(codecId))
        .then((answer) => Boolean(answer?.supported), () => false);
    } catch {
      check = Promise.resolve(false);
    }
    support.set(entry.codec, check);
  }
  return support.get(entry.codec);
}

/** The name people know for a header codec byte or a media view codec ('video/VP8'). */
export function codecName(codec) {
  const id = typeof codec === 'number' ? codec : CODEC_IDS[codec];
  return CODECS[id]?.name ?? (typeof codec === 'string' && codec ? codec.replace(/^video\//, '') : 'unknown codec');
}

/**
 * Decodes one track's frames, in order, from the first keyframe. After an error or a frame
 * that follows lost ones, it starts again from the next keyframe (a delta frame after a gap
 * would decode to garbage). `onFrame(videoFrame)` draws; the frame is closed after it returns.
 * `onUndecodable({ codec, reason })` is called once if this webview cannot decode the track.
 * `onKeyframeWanted()` is called (at most once a second) while it waits for a keyframe that
 * is not coming by itself.
 */
export class TrackDecoder {
  #onFrame;
  #onUndecodable;
  #onKeyframeWanted;
  #askedForKeyframeAt = -Infinity;
  /** idle, checking (the support check runs), ready, undecodable or closed. */
  #state = 'idle';
  #codecId = null;
  #decoder = null;
  // Outputs and errors of a decoder that has since been replaced are ignored.
  #generation = 0;
  #needKeyframe = true;
  #held = [];
  #decoded = 0;
  #failures = 0;
  #watchdog = null;

  constructor({ codecId = null, onFrame, onUndecodable, onKeyframeWanted = () => {} }) {
    this.#onFrame = onFrame;
    this.#onUndecodable = onUndecodable;
    this.#onKeyframeWanted = onKeyframeWanted;
    // The media view names the codec before the first frame: check it straight away.
    if (codecId) this.#start(codecId);
  }

  /** Frames decoded so far. */
  get decoded() {
    return this.#decoded;
  }

  /** One parsed frame (see parseFrame) of this decoder's track. */
  feed(frame) {
    if (this.#state === 'closed' || this.#state === 'undecodable') return;
    if (frame.codecId !== this.#codecId) this.#start(frame.codecId);
    if (this.#state === 'checking') this.#hold(frame);
    else if (this.#state === 'ready') this.#decode(frame);
  }

  /** Stops decoding for good (the tile is hidden or gone). */
  close() {
    this.#stop();
    this.#state = 'closed';
  }

  #stop() {
    this.#generation += 1;
    clearTimeout(this.#watchdog);
    this.#watchdog = null;
    this.#held = [];
    this.#closeDecoder();
  }

  #closeDecoder() {
    if (this.#decoder && this.#decoder.state !== 'closed') {
      try {
        this.#decoder.close();
      } catch {
        // Already closed by an error: nothing to release.
      }
    }
    this.#decoder = null;
  }

  // A new track or a codec change: check support, then configure.
  #start(codecId) {
    this.#stop();
    this.#codecId = codecId;
    this.#state = 'checking';
    const generation = this.#generation;
    canDecode(codecId).then((supported) => {
      if (generation !== this.#generation || this.#state !== 'checking') return;
      if (!supported) {
        this.#giveUp('this webview has no decoder for it');
        return;
      }
      this.#configure();
      const held = this.#held;
      this.#held = [];
      for (const frame of held) {
        if (this.#state === 'ready') this.#decode(frame);
      }
    });
  }

  // While checking: keep the last keyframe and what follows it.
  #hold(frame) {
    if (frame.keyframe) this.#held = [frame];
    else if (frame.lost) this.#held = [];
    else if (this.#held.length > 0 && this.#held.length < MAX_HELD) this.#held.push(frame);
  }

  #configure() {
    const generation = this.#generation;
    try {
      this.#decoder = new VideoDecoder({
        output: (videoFrame) => this.#output(videoFrame, generation),
        error: (err) => this.#failed(err, generation),
      });
      this.#decoder.configure(configFor(this.#codecId));
      this.#state = 'ready';
      this.#needKeyframe = true;
    } catch (err) {
      this.#giveUp(`the decoder refused its configuration (${err?.message ?? err})`);
    }
  }

  #decode(frame) {
    if (frame.lost && !this.#needKeyframe && !this.#restart()) return;
    if (this.#decoder.decodeQueueSize > MAX_BACKLOG && !this.#restart()) return;
    if (this.#needKeyframe) {
      if (!frame.keyframe) {
        this.#askForKeyframe();
        return;
      }
      this.#needKeyframe = false;
    }
    if (frame.keyframe && this.#decoded === 0 && this.#watchdog === null) {
      this.#watchdog = setTimeout(() => {
        if (this.#decoded === 0) this.#giveUp(`no frame decoded in ${NO_FRAME_MS / 1000} s`);
      }, NO_FRAME_MS);
    }
    try {
      this.#decoder.decode(new EncodedVideoChunk({
        type: frame.keyframe ? 'key' : 'delta',
        timestamp: frame.timestamp,
        data: frame.data,
      }));
    } catch (err) {
      this.#failed(err, this.#generation);
    }
  }

  #askForKeyframe() {
    const now = performance.now();
    if (now - this.#askedForKeyframeAt < KEYFRAME_ASK_MS) return;
    this.#askedForKeyframeAt = now;
    try {
      this.#onKeyframeWanted();
    } catch (err) {
      console.warn('asking for a keyframe', err);
    }
  }

  // Drops what is queued and waits for a keyframe. False when the decoder could not be reset.
  #restart() {
    try {
      this.#decoder.reset();
      this.#decoder.configure(configFor(this.#codecId));
    } catch (err) {
      this.#failed(err, this.#generation);
      return false;
    }
    this.#needKeyframe = true;
    return true;
  }

  #failed(err, generation) {
    if (generation !== this.#generation || this.#state !== 'ready') return;
    this.#failures += 1;
    console.warn('video decoder error', err);
    if (this.#decoded === 0 && this.#failures >= MAX_FAILURES) {
      this.#giveUp(`the decoder failed (${err?.message ?? err})`);
      return;
    }
    // A decoder closes itself on an error: a new one, from the next keyframe.
    this.#closeDecoder();
    this.#generation += 1;
    this.#configure();
  }

  #output(videoFrame, generation) {
    try {
      if (generation !== this.#generation || this.#state !== 'ready') return;
      this.#decoded += 1;
      this.#failures = 0;
      clearTimeout(this.#watchdog);
      this.#onFrame(videoFrame);
    } catch (err) {
      console.error(err);
    } finally {
      videoFrame.close();
    }
  }

  #giveUp(reason) {
    if (this.#state === 'closed' || this.#state === 'undecodable') return;
    this.#stop();
    this.#state = 'undecodable';
    console.warn(`video track not decodable: ${codecName(this.#codecId)}: ${reason}`);
    this.#onUndecodable({ codec: codecName(this.#codecId), reason });
  }
}
