// What more than one module reads, in one place. Timers, the player and the like stay private
// to the module that runs them.
export const state = {
  /** The screen on show: start, lobby, call or watch (also #app's data-screen). */
  screen: 'start',
  /** The call on the call screen, as join_call and EVENTS.call give it; null outside a call. */
  call: null,
};
