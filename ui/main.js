// The page's entry: binds each part of the page, starts it up, then sends the ready signal.
//   bridge.js       every Tauri command and event name
//   router.js       moving between the screens; state.js what more than one module reads
//   status.js       status bar and error banner; devices.js pickers, preview, meter
//   diagnostics.js  panel, token inspector, timeline, log levels, export
//   links.js        following confab:// links
//   screens/*.js    start, lobby, call, watch: each with enter(context) and leave()
import { EVENTS, listen, uiReady } from './bridge.js';
import * as devices from './devices.js';
import * as diagnostics from './diagnostics.js';
import { $ } from './dom.js';
import * as links from './links.js';
import { addScreen } from './router.js';
import * as call from './screens/call.js';
import * as lobby from './screens/lobby.js';
import * as start from './screens/start.js';
import * as watch from './screens/watch.js';
import { showConnection, showMode } from './status.js';

for (const [name, screen] of Object.entries({ start, lobby, call, watch })) {
  screen.setup();
  addScreen(name, screen);
}
diagnostics.setup();

// How long each start-up step took (page clock), sent with the ready signal for the log.
const phases = {};
const timed = (name, promise) => promise.finally(() => { phases[name] = Math.round(performance.now()); });

Promise.all([
  timed('app_info', start.showAppInfo()),
  timed('log_levels', diagnostics.showLogLevels()),
  timed('devices', devices.setup()),
  listen(EVENTS.connection, showConnection),
  listen(EVENTS.broadcast, call.showBroadcast),
  listen(EVENTS.call, call.update),
  // Links from this launch wait in the backend until ui_ready, so this is heard first.
  listen(EVENTS.link, (payload) => links.follow(payload).catch((err) => console.error(err))),
])
  // Only once the events are heard: a restored sign-in connects straight away.
  .then(() => timed('restore_sign_in', start.restoreSignIn()))
  .catch((err) => {
    showMode('Backend unavailable', 'error');
    console.error(err);
  })
  .finally(() => {
    // Tests and the start-up benchmark wait for this.
    $('app').dataset.ready = 'true';
    uiReady(phases).catch(() => {});
  });
