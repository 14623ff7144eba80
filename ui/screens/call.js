// The call screen: participants from the coordinator's events, the tiles with everyone's video
// and the call's controls (call-media.js), and for a livestream's host, going live, back to
// backstage, and a viewer token to share.
import * as bridge from '../bridge.js';
import { describeError } from '../bridge.js';
import { holdCapture, releaseCapture } from '../devices.js';
import { $ } from '../dom.js';
import { navigate } from '../router.js';
import { state } from '../state.js';
import { clearError, showError } from '../status.js';
import * as media from './call-media.js';

/** Binds the call screen's controls. */
export function setup() {
  $('leave-call').addEventListener('click', async () => {
    await bridge.leaveCall().catch(() => {});
    state.call = null;
    await navigate('lobby');
  });
  $('go-live').addEventListener('click', () => setLive(true));
  $('stop-live').addEventListener('click', () => setLive(false));
  $('share-viewer-token').addEventListener('click', shareViewerToken);
  $('hosting-on').addEventListener('change', () => setHosting($('hosting-on').checked));
  media.setup();
}

/**
 * Shows `view` (join_call's answer), attaches the call's media, and moves the camera preview
 * into your tile.
 */
export async function enter({ view }) {
  $('host-result').textContent = '';
  $('broadcast-status').textContent = '';
  render(view);
  // Only the embedded coordinator can be hosted; always off on arrival.
  $('hosting').hidden = state.backend !== 'local';
  $('hosting-on').checked = false;
  showHosting(null);
  media.start(view.participants);
  // #preview-call is your tile's video slot (video-tiles.js).
  $('preview-call').append($('preview'));
  $('preview').classList.add('tile-video');
  await holdCapture('call');
}

/** Stops the call's media and puts the camera preview back in the lobby. */
export async function leave() {
  if ($('hosting-on').checked) await setHosting(false);
  $('preview').classList.remove('tile-video');
  $('preview-home').append($('preview'));
  media.stop();
  await releaseCapture('call');
}

/** An EVENTS.call payload: shown if it is about the call on screen. */
export function update(view) {
  if (state.call && view.cid === state.call.cid) render(view);
}

/** An EVENTS.broadcast payload: the host's broadcast, as the backend reports it. */
export function showBroadcast(status) {
  const out = $('broadcast-status');
  out.dataset.state = status.state;
  out.textContent = {
    live: 'Broadcasting: viewers watch over WebRTC, and over HLS beyond its seats',
    stopped: 'The broadcast has ended.',
    failed: `Live over WebRTC, but HLS could not start: ${status.error}`,
  }[status.state] ?? status.state;
}

function render(view) {
  state.call = view;
  $('call-title').textContent = view.call_type === 'livestream' ? `Livestream ${view.cid.split(':')[1]}` : `Call ${view.cid.split(':')[1]}`;
  $('call-title').dataset.cid = view.cid;
  const badge = $('call-live');
  if (view.call_type === 'livestream') {
    badge.textContent = view.backstage ? 'Backstage' : 'Live';
    badge.dataset.state = view.backstage ? 'backstage' : 'live';
  } else {
    badge.textContent = '';
    delete badge.dataset.state;
  }
  $('participant-count').textContent = String(view.participants.length);
  $('participants').replaceChildren(...view.participants.map((p) => {
    const li = document.createElement('li');
    li.textContent = p.name ?? p.user_id;
    if (p.user_id === $('who').dataset.userId) li.textContent += ' (you)';
    li.dataset.userId = p.user_id;
    return li;
  }));
  media.setPeople(view.participants);
  $('host-controls').hidden = !(view.can_go_live && view.call_type === 'livestream');
  $('go-live').hidden = !view.backstage;
  $('stop-live').hidden = view.backstage;
}

async function setLive(live) {
  try {
    const isLive = await bridge.setLive(live);
    render({ ...state.call, backstage: !isLive });
    $('host-result').textContent = isLive ? 'You are live.' : 'Back in backstage: viewers see that the stream has not started.';
  } catch (err) {
    $('host-result').textContent = describeError(err);
  }
}

/** Turns hosting for the network on (the listener opens, the invite shows) or off. */
async function setHosting(on) {
  const [callType, callId] = state.call.cid.split(':');
  $('hosting-result').textContent = '';
  try {
    if (on) {
      showHosting(await bridge.startHosting(callType, callId));
    } else {
      await bridge.stopHosting();
      showHosting(null);
    }
    $('hosting-on').checked = on;
    clearError();
  } catch (err) {
    $('hosting-on').checked = false;
    showHosting(null);
    showError(describeError(err));
  }
}

function showHosting(hosting) {
  $('hosting-invite').hidden = !hosting;
  $('hosting').dataset.state = hosting ? 'on' : 'off';
  $('hosting-link').value = hosting?.invite_link ?? '';
  $('hosting-address').textContent = hosting ? `Listening on ${hosting.address}, on your network.` : '';
  if (hosting) $('hosting-qr').src = hosting.qr_code;
  else $('hosting-qr').removeAttribute('src');
}

async function shareViewerToken() {
  const out = $('host-result');
  try {
    const token = await bridge.viewerToken();
    out.textContent = token
      ? `Viewers of ${state.call.cid} can use this token: ${token}`
      : 'Viewer tokens come from your own server when you use Stream.';
    if (token) out.dataset.token = token;
  } catch (err) {
    out.textContent = describeError(err);
  }
}
