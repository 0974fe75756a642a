/* sc_signal.h - Ctrl-C and SIGTERM for the runner.
 *
 * The runner's children live in their own process groups, so a terminal's Ctrl-C reaches
 * only the runner. Instead of dying and leaving them running, the runner notes the signal;
 * every wait loop checks sc_signal_caught() and gives up, and the normal teardown stops
 * the children. A second signal is not special: teardown is bounded by deadlines.
 * Also ignores SIGPIPE (a child closing a socket must not kill the runner).
 */
#ifndef SC_SIGNAL_H
#define SC_SIGNAL_H

/* Installs the handlers. Call once from main before starting anything. */
void sc_signal_install(void);

/* The signal number caught (SIGINT/SIGTERM/SIGHUP), or 0. Async-signal-safe to read;
 * callable from any thread. */
int sc_signal_caught(void);

#endif
