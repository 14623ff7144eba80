// What more than one module reads, in one place. Timers, the player and the like stay private
// to the module that runs them.
export const state = {
  /** The screen on show: start, lobby, call or watch (also #app's data-screen). */
  screen: 'start',
  /** The call on the call screen, as join_call and EVENTS.call give it; null outside a call. */
  call: null,
  /** 'local' or 'stream' while signed in (sign-in's answer); null when signed out. */
  backend: null,
  /** A call a confab://join link asked for: { call_type, call_id, backend }, filled into the
   *  lobby after sign-in (with a backend: an invite, signing in there as a guest). */
  pendingJoin: null,
};
