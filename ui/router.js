// Moves between the screens (start, lobby, call, watch): one <section id="screen-NAME"> each,
// and a module each with enter(context) and leave().
import { setWindowTitle } from './bridge.js';
import { $ } from './dom.js';
import { state } from './state.js';

const screens = new Map();

/** Makes `screen` ({ enter, leave }) the one shown for `name`. */
export function addScreen(name, screen) {
  screens.set(name, screen);
}

/**
 * Shows screen `name`, entering it with `context`, and moves focus to its heading. The new
 * screen enters before the old one leaves, so what both use (the lobby's and the call's camera
 * preview and mic meter) keeps running between them instead of stopping and starting again.
 * The screen on show is entered again, without leaving, when an answer for it comes late
 * (a second Join or sign-in): it shows the newer one.
 */
export async function navigate(name, context) {
  const from = state.screen;
  for (const other of screens.keys()) $(`screen-${other}`).hidden = other !== name;
  $('app').dataset.screen = name;
  state.screen = name;
  await screens.get(name).enter(context);
  if (from !== name) await screens.get(from).leave();
  const heading = $(`screen-${name}`).querySelector('h1');
  heading.tabIndex = -1;
  heading.focus();
  showWindowTitle(name);
}

/**
 * Names the window after what it shows (the call, who you are), as the desktop lists it: in
 * the task bar and in screen-share pickers, where two Confab windows would otherwise both be
 * "Confab".
 */
function showWindowTitle(name) {
  const text = (id) => $(id).textContent.trim();
  const parts = {
    lobby: () => [text('who')],
    call: () => [text('call-title'), text('who')],
    watch: () => [text('watch-screen-title')],
  }[name]?.() ?? [];
  const title = [...parts.filter(Boolean), 'Confab'].join(' — ');
  document.title = title;
  setWindowTitle(title).catch(() => {});
}
