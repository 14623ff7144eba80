// The call's tiles: one per person, arranged as a grid or as one large tile over a strip, each
// drawing its person's video. A tile measures itself (ResizeObserver, IntersectionObserver) and
// asks the backend for its video at the size it shows, or for none while it is out of sight
// (set_video_view); one TrackDecoder per track being shown turns frames into pictures.
import { icon, setIcon } from './icons.js';
import { CODEC_IDS, TrackDecoder, parseFrame, parsePicture } from './video-decoder.js';

const GAP = 8;
// Tiles do not shrink past this: more people than fit scroll instead.
const MIN_TILE_WIDTH = 112;
// Size changes (a window being dragged) settle before the backend is asked for another layer.
const VIEW_DEBOUNCE_MS = 200;

/** Two letters for a name: first and last word ("Hana Host" gives HH), or its first letter. */
export function initials(name) {
  const words = String(name ?? '').trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return '?';
  const first = (word) => Array.from(word)[0].toUpperCase();
  return words.length === 1 ? first(words[0]) : first(words[0]) + first(words.at(-1));
}

/** A shared screen's tile key: it sits beside its sharer's tile, told apart by its kind. */
export const screenTileKey = (identity) => `${identity}#screen`;

/** The tile model (see TileStage.update) of a screen `participant` (of the media view) shares. */
export function screenModel(participant, name) {
  return {
    identity: screenTileKey(participant.identity),
    kind: 'screen',
    self: false,
    name: `${name}'s screen`,
    speaking: false,
    quality: participant.quality ?? null,
    micMuted: true,
    cameraOff: Boolean(participant.screen.muted),
    video: participant.screen,
  };
}

/** The largest 16:9 tiles for `count` tiles in `width` x `height`: { cols, width, height, overflow }. */
function fitGrid(count, width, height) {
  let best = { cols: 1, width: 0, height: 0 };
  for (let cols = 1; cols <= count; cols++) {
    const rows = Math.ceil(count / cols);
    let w = (width - GAP * (cols - 1)) / cols;
    let h = (w * 9) / 16;
    const maxH = (height - GAP * (rows - 1)) / rows;
    if (h > maxH) {
      h = maxH;
      w = (h * 16) / 9;
    }
    if (w > best.width) best = { cols, width: w, height: h };
  }
  if (best.width >= MIN_TILE_WIDTH) return { ...best, overflow: false };
  const cols = Math.max(1, Math.floor((width + GAP) / (MIN_TILE_WIDTH + GAP)));
  return { cols, width: MIN_TILE_WIDTH, height: (MIN_TILE_WIDTH * 9) / 16, overflow: true };
}

/** The largest 16:9 box in `width` x `height`. */
const fit16x9 = (width, height) => {
  const w = Math.min(width, (height * 16) / 9);
  return { width: w, height: (w * 9) / 16 };
};

/** One person's tile. */
class Tile {
  constructor(identity, self) {
    this.identity = identity;
    this.self = self;
    this.name = identity;
    this.trackSid = null;
    this.codec = null;
    this.decoder = null;
    // What the decoder could not show: the track sid and the codec's name.
    this.undecodable = null;
    this.visible = false;
    this.width = 0;
    this.height = 0;
    this.framesDrawn = 0;
    this.framesReceived = 0;
    this.lastDrawnAt = null;
    this.geometry = '';

    const el = document.createElement('div');
    el.className = 'tile';
    el.dataset.identity = identity;
    el.setAttribute('role', 'group');
    if (self) el.dataset.self = 'true';
    el.dataset.speaking = 'false';
    el.dataset.video = 'off';
    el.dataset.hasFrame = 'false';
    el.dataset.framesDrawn = '0';

    if (self) {
      // Your own camera is the preview (devices.js draws it); call.js moves it in here.
      this.slot = document.createElement('div');
      this.slot.id = 'preview-call';
      this.slot.className = 'tile-video-slot';
    } else {
      this.canvas = document.createElement('canvas');
      this.canvas.className = 'tile-video';
      this.canvas.width = 0;
      this.canvas.height = 0;
      this.canvas.setAttribute('role', 'img');
      this.context = this.canvas.getContext('2d', { alpha: false });
    }

    this.initialsEl = document.createElement('div');
    this.initialsEl.className = 'tile-initials';
    this.initialsEl.setAttribute('aria-hidden', 'true');

    this.placeholder = document.createElement('p');
    this.placeholder.className = 'tile-placeholder';
    this.placeholder.hidden = true;

    this.quality = document.createElement('span');
    this.quality.className = 'tile-quality';
    this.quality.setAttribute('role', 'img');
    this.quality.append(...[1, 2, 3].map(() => document.createElement('i')));

    this.pin = document.createElement('button');
    this.pin.type = 'button';
    this.pin.className = 'tile-pin';
    this.pin.setAttribute('aria-pressed', 'false');
    this.pin.append(icon('pin'));

    this.mic = document.createElement('span');
    this.mic.className = 'tile-mic';
    this.mic.setAttribute('role', 'img');
    this.camera = document.createElement('span');
    this.camera.className = 'tile-camera';
    this.camera.setAttribute('role', 'img');
    this.nameEl = document.createElement('span');
    this.nameEl.className = 'tile-name';

    const top = document.createElement('div');
    top.className = 'tile-top';
    top.append(this.quality, this.pin);
    const bottom = document.createElement('div');
    bottom.className = 'tile-bottom';
    bottom.append(this.mic, this.camera, this.nameEl);
    el.append(this.slot ?? this.canvas, this.initialsEl, this.placeholder, top, bottom);
    this.el = el;
  }

  /** Shows `model` (see TileStage.update) and whether the tile is pinned. */
  show(model, pinned) {
    const el = this.el;
    const name = model.name || this.identity;
    if (name !== this.name || !this.nameEl.textContent) {
      this.name = name;
      this.nameEl.textContent = this.self ? `${name} (you)` : name;
      this.initialsEl.textContent = initials(name);
      el.setAttribute('aria-label', this.self ? `${name} (you)` : name);
      this.canvas?.setAttribute('aria-label', `${name}'s video`);
    }
    el.dataset.speaking = String(Boolean(model.speaking));
    if (model.quality) {
      el.dataset.quality = model.quality;
      this.quality.hidden = false;
      this.quality.setAttribute('aria-label', `Connection: ${model.quality}`);
      this.quality.title = `Connection: ${model.quality}`;
    } else {
      delete el.dataset.quality;
      this.quality.hidden = true;
    }
    const muted = Boolean(model.micMuted);
    this.mic.dataset.muted = String(muted);
    this.mic.setAttribute('aria-label', muted ? 'Microphone muted' : 'Microphone on');
    setIcon(this.mic, muted ? 'mic-off' : 'mic');
    const cameraOff = Boolean(model.cameraOff);
    this.camera.dataset.off = String(cameraOff);
    this.camera.setAttribute('aria-label', cameraOff ? 'Camera off' : 'Camera on');
    setIcon(this.camera, cameraOff ? 'camera-off' : 'camera');
    this.pin.setAttribute('aria-pressed', String(pinned));
    this.pin.setAttribute('aria-label', `${pinned ? 'Unpin' : 'Pin'} ${name}`);
    this.pin.title = pinned ? 'Unpin' : 'Pin to the large spot';
    if (pinned) el.dataset.pinned = 'true';
    else delete el.dataset.pinned;
    this.cameraOff = cameraOff;
    this.showVideoState();
  }

  showVideoState() {
    const state = this.cameraOff ? 'off' : this.undecodable ? 'undecodable' : 'on';
    this.el.dataset.video = state;
    this.placeholder.hidden = state !== 'undecodable';
    if (state === 'undecodable') this.placeholder.textContent = `Video can't be shown here (${this.undecodable.codec})`;
  }

  /** Draws a decoded frame whole, letterboxed to the canvas (sized to the tile's device pixels). */
  draw(frame) {
    const canvas = this.canvas;
    if (canvas.width === 0 || canvas.height === 0) return;
    // A VideoFrame, or an ImageBitmap of a picture the backend decoded.
    const fw = frame.displayWidth ?? frame.width;
    const fh = frame.displayHeight ?? frame.height;
    const scale = Math.min(canvas.width / fw, canvas.height / fh);
    const w = Math.round(fw * scale);
    const h = Math.round(fh * scale);
    const x = Math.floor((canvas.width - w) / 2);
    const y = Math.floor((canvas.height - h) / 2);
    // Bars only where the picture does not reach, and only when the geometry changes.
    const geometry = `${canvas.width}x${canvas.height} ${fw}x${fh}`;
    if (geometry !== this.geometry) {
      this.context.fillStyle = '#000';
      this.context.fillRect(0, 0, canvas.width, canvas.height);
      this.geometry = geometry;
    }
    this.context.drawImage(frame, x, y, w, h);
    this.framesDrawn += 1;
    this.lastDrawnAt = Date.now();
    this.el.dataset.framesDrawn = String(this.framesDrawn);
    if (this.el.dataset.hasFrame !== 'true') this.el.dataset.hasFrame = 'true';
  }

  /** Sizes the canvas to the tile in device pixels (clearing it; the next frame redraws it). */
  resizeCanvas() {
    if (!this.canvas) return;
    if (this.canvas.width !== this.width || this.canvas.height !== this.height) {
      this.canvas.width = this.width;
      this.canvas.height = this.height;
      this.geometry = '';
    }
  }
}

/**
 * The tiles in `grid` (#call-grid). `setVideoView(trackSid, width, height)` asks the backend for
 * a track at a size (0x0: none); `requestKeyframe(trackSid)` asks for a keyframe of a track
 * whose decoder lost its place; `onPin(identity)` is a pin button's click.
 */
export class TileStage {
  #grid;
  #focusBox;
  #tilesBox;
  #setVideoView;
  #requestKeyframe;
  #tiles = new Map();
  #bySid = new Map();
  #order = [];
  #focus = null;
  #layout = 'grid';
  // The size last asked for per track sid ('WxH'), and the asks waiting out the debounce.
  #sent = new Map();
  #pending = new Map();
  #decodeInRust = false;
  #resize;
  #intersect;

  constructor(grid, { setVideoView, requestKeyframe = async () => {}, onPin }) {
    this.#grid = grid;
    this.#setVideoView = setVideoView;
    this.#requestKeyframe = requestKeyframe;
    this.#focusBox = document.createElement('div');
    this.#focusBox.className = 'call-focus';
    this.#tilesBox = document.createElement('div');
    this.#tilesBox.className = 'call-tiles';
    grid.replaceChildren(this.#focusBox, this.#tilesBox);
    grid.dataset.layout = 'grid';
    grid.dataset.arrangement = 'grid';

    this.#resize = new ResizeObserver((entries) => {
      for (const entry of entries) {
        if (entry.target === grid) {
          this.#size();
          continue;
        }
        const tile = this.#tileOf(entry.target);
        if (!tile) continue;
        const dpr = window.devicePixelRatio || 1;
        tile.width = Math.round(entry.contentRect.width * dpr);
        tile.height = Math.round(entry.contentRect.height * dpr);
        tile.resizeCanvas();
        this.#want(tile);
      }
    });
    this.#intersect = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        const tile = this.#tileOf(entry.target);
        if (!tile) continue;
        tile.visible = entry.isIntersecting;
        this.#want(tile);
      }
    });
    this.#resize.observe(grid);
    grid.addEventListener('click', (e) => {
      const pin = e.target.closest('.tile-pin');
      const tile = pin && this.#tileOf(pin.closest('.tile'));
      if (tile) onPin(tile.identity);
    });
  }

  #tileOf(el) {
    const tile = el && this.#tiles.get(el.dataset.identity);
    return tile?.el === el ? tile : null;
  }

  /**
   * Shows `models` in order: `{ identity, self, name, speaking, quality, micMuted, cameraOff,
   * video: null | { track_sid, codec } }`. `focus` (an identity or null) takes the large spot
   * over a strip of the others; `pinned` is the pinned identity; `layout` grid or speaker.
   */
  update(models, { focus, pinned, layout }) {
    const seen = new Set();
    for (const model of models) {
      seen.add(model.identity);
      let tile = this.#tiles.get(model.identity);
      // Your tile holds the preview canvas: it is kept (re-keyed) rather than replaced.
      const self = model.self ? [...this.#tiles.values()].find((t) => t.self) : null;
      if (self && self !== tile) {
        if (tile) this.#remove(tile);
        this.#tiles.delete(self.identity);
        self.identity = model.identity;
        self.el.dataset.identity = model.identity;
        this.#tiles.set(model.identity, self);
        tile = self;
      }
      if (!tile) {
        tile = new Tile(model.identity, Boolean(model.self));
        this.#tiles.set(model.identity, tile);
        if (!tile.self) {
          this.#resize.observe(tile.el);
          this.#intersect.observe(tile.el);
        }
      }
      tile.el.dataset.kind = model.kind ?? 'camera';
      tile.show(model, model.identity === pinned);
      if (!tile.self) this.#setTrack(tile, model.video);
    }
    for (const [identity, tile] of this.#tiles) {
      if (!seen.has(identity)) this.#remove(tile);
    }
    this.#order = models.map((m) => this.#tiles.get(m.identity));
    this.#focus = focus && this.#tiles.has(focus) ? this.#tiles.get(focus) : null;
    this.#layout = layout;
    this.#arrange();
  }

  /** One binary channel message: a frame, for the decoder of its track if it is being shown. */
  frame(bytes) {
    if (bytes[0] === 2) {
      this.#picture(bytes);
      return;
    }
    const frame = parseFrame(bytes);
    if (!frame) return;
    const tile = this.#bySid.get(frame.trackSid);
    if (!tile) return;
    tile.framesReceived += 1;
    tile.decoder?.feed(frame);
  }

  /** Pictures the backend decodes (H.264 in a webview without WebCodecs) instead of frames. */
  set decodeInRust(on) {
    this.#decodeInRust = on;
  }

  #picture(bytes) {
    const picture = parsePicture(bytes);
    if (!picture) return;
    const tile = this.#bySid.get(picture.trackSid);
    if (!tile) return;
    tile.framesReceived += 1;
    createImageBitmap(picture.image).then((bitmap) => {
      if (tile.trackSid === picture.trackSid) tile.draw(bitmap);
      bitmap.close();
    }, (err) => console.warn('picture', err));
  }

  /** Stops every decoder, tells the backend no track is shown, and removes the tiles. */
  clear() {
    for (const tile of [...this.#tiles.values()]) this.#remove(tile);
    this.#sent.clear();
    this.#order = [];
    this.#focus = null;
    this.#arrange();
  }

  /** The tile of `identity`, for the test hooks. */
  tile(identity) {
    return this.#tiles.get(identity) ?? null;
  }

  /** Every tile, in order, for the test hooks. */
  tiles() {
    return [...this.#order];
  }

  /** The size last asked for per track sid: { sid: [width, height] }. */
  videoViews() {
    return Object.fromEntries([...this.#sent].map(([sid, size]) => [sid, size.split('x').map(Number)]));
  }

  #remove(tile) {
    this.#setTrack(tile, null);
    this.#resize.unobserve(tile.el);
    this.#intersect.unobserve(tile.el);
    tile.el.remove();
    this.#tiles.delete(tile.identity);
  }

  // The tile's video track: a new one replaces the old, whose view is dropped at once.
  #setTrack(tile, video) {
    const sid = video?.track_sid ?? null;
    tile.codec = video?.codec ?? null;
    if (sid === tile.trackSid) return;
    if (tile.trackSid) {
      this.#stopDecoder(tile);
      this.#bySid.delete(tile.trackSid);
      this.#send(tile.trackSid, 0, 0);
      this.#sent.delete(tile.trackSid);
    }
    tile.trackSid = sid;
    tile.undecodable = null;
    tile.el.dataset.hasFrame = 'false';
    if (sid) {
      tile.el.dataset.trackSid = sid;
      this.#bySid.set(sid, tile);
      this.#want(tile);
    } else {
      delete tile.el.dataset.trackSid;
    }
    tile.showVideoState();
  }

  // What the tile should receive now: its size while visible, decodable and on screen, else 0x0.
  // `now` skips the debounce (a track that cannot be shown is dropped at once).
  #want(tile, now = false) {
    const sid = tile.trackSid;
    if (!sid) return;
    const shown = tile.visible && !tile.undecodable && tile.width > 0 && tile.height > 0;
    const [width, height] = shown ? [tile.width, tile.height] : [0, 0];
    const key = `${width}x${height}`;
    clearTimeout(this.#pending.get(sid));
    this.#pending.delete(sid);
    if (shown && !tile.decoder) this.#startDecoder(tile);
    if (this.#sent.get(sid) === key) return;
    const apply = () => {
      this.#pending.delete(sid);
      if (tile.trackSid !== sid) return;
      this.#send(sid, width, height);
      this.#sent.set(sid, key);
      if (!shown) this.#stopDecoder(tile);
    };
    // Coming into view: ask at once, for the first picture soon. Otherwise let it settle.
    const previous = this.#sent.get(sid);
    if (now || (shown && (previous === undefined || previous === '0x0'))) apply();
    else this.#pending.set(sid, setTimeout(apply, VIEW_DEBOUNCE_MS));
  }

  #send(sid, width, height) {
    this.#setVideoView(sid, width, height).catch((err) => console.warn('set_video_view', sid, err));
  }

  #startDecoder(tile) {
    const sid = tile.trackSid;
    tile.el.dataset.hasFrame = 'false';
    // The backend decodes H.264 for this webview: its pictures are drawn as they come.
    if (this.#decodeInRust && CODEC_IDS[tile.codec] === 1) return;
    tile.decoder = new TrackDecoder({
      codecId: CODEC_IDS[tile.codec] ?? null,
      onFrame: (frame) => tile.draw(frame),
      onKeyframeWanted: () => {
        this.#requestKeyframe(sid).catch((err) => console.warn('request_keyframe', sid, err));
      },
      onUndecodable: ({ codec }) => {
        if (tile.trackSid !== sid) return;
        tile.undecodable = { sid, codec };
        tile.decoder = null;
        tile.showVideoState();
        // Nothing to show: stop the backend sending it.
        this.#want(tile, true);
      },
    });
  }

  #stopDecoder(tile) {
    clearTimeout(this.#pending.get(tile.trackSid));
    this.#pending.delete(tile.trackSid);
    tile.decoder?.close();
    tile.decoder = null;
  }

  // Puts the tiles where they go: the focus tile over a strip of the others, or all in a grid.
  #arrange() {
    const focus = this.#focus;
    const grid = this.#grid;
    grid.dataset.layout = this.#layout;
    grid.dataset.arrangement = focus ? 'focus' : 'grid';
    grid.dataset.count = String(this.#order.length);
    if (focus) grid.dataset.focus = focus.identity;
    else delete grid.dataset.focus;
    const inStrip = this.#order.filter((t) => t !== focus);
    for (const tile of this.#order) tile.el.dataset.spot = tile === focus ? 'focus' : focus ? 'strip' : 'grid';
    // Moving a node blurs it: put focus back where it was (a pin button just pressed).
    const active = document.activeElement;
    setChildren(this.#focusBox, focus ? [focus.el] : []);
    setChildren(this.#tilesBox, inStrip.map((t) => t.el));
    if (active && active !== document.activeElement && document.contains(active)) active.focus();
    this.#size();
  }

  // Sizes the tiles to the room the grid has (16:9, as large as fits).
  #size() {
    const grid = this.#grid;
    const width = grid.clientWidth;
    const height = grid.clientHeight;
    if (width === 0 || height === 0) return;
    const px = (n) => `${Math.max(0, Math.floor(n))}px`;
    if (this.#focus) {
      const others = this.#order.length - 1;
      const strip = others > 0 ? Math.min(140, Math.max(56, Math.round(height * 0.2))) : 0;
      const big = fit16x9(width, height - strip - (others > 0 ? GAP : 0));
      grid.style.setProperty('--focus-w', px(big.width));
      grid.style.setProperty('--focus-h', px(big.height));
      grid.style.setProperty('--strip-h', px(strip));
      grid.style.setProperty('--strip-w', px((strip * 16) / 9));
      delete grid.dataset.overflow;
    } else {
      const fit = fitGrid(Math.max(1, this.#order.length), width, height);
      grid.style.setProperty('--cols', String(fit.cols));
      grid.style.setProperty('--tile-w', px(fit.width));
      grid.style.setProperty('--tile-h', px(fit.height));
      if (fit.overflow) grid.dataset.overflow = 'true';
      else delete grid.dataset.overflow;
    }
  }
}

// Replaces `parent`'s children with `children` only when they differ (moving nodes is not free).
function setChildren(parent, children) {
  const current = parent.children;
  if (current.length === children.length && children.every((c, i) => current[i] === c)) return;
  parent.replaceChildren(...children);
}
