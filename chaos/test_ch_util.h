/* test_ch_util.h - loopback peers for the chaos-proxy tests: an echo server that counts
 * what it receives, blocking clients with deadlines, and a deadline wait for conditions
 * that have no event to wait on (a counter another thread updates).
 *
 * Test code only: failures return error values for the test to assert on, never abort.
 */
#ifndef TEST_CH_UTIL_H
#define TEST_CH_UTIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct tu_server tu_server_t;

/* Starts an echo server on 127.0.0.1 (a free port). Each connection first gets greeting
 * (when not NULL), then everything it sends is written back, until it closes. It serves
 * 128 connections over its life (later ones are closed at once). NULL on failure. */
tu_server_t *tu_server_start(const char *greeting);
uint16_t tu_server_port(const tu_server_t *s);
/* Bytes received and connections accepted so far (all connections). */
uint64_t tu_server_received(tu_server_t *s);
uint64_t tu_server_accepted(tu_server_t *s);
/* Stops it, closing every connection; sets *s to NULL; accepts NULL. */
void tu_server_stop(tu_server_t **s);

/* A blocking TCP connection to 127.0.0.1:port; -1 on failure. */
int tu_connect(uint16_t port);

/* Sends all of buf within timeout_ms. 0, or an errno value (ETIMEDOUT on time out). */
int tu_send_all(int fd, const void *buf, size_t len, int timeout_ms);

typedef enum {
    TU_FULL = 0,    /* got all len bytes */
    TU_EOF = 1,     /* the peer closed (FIN) first */
    TU_RESET = 2,   /* ECONNRESET first */
    TU_TIMEOUT = 3, /* timeout_ms passed first */
    TU_ERROR = 4,   /* another error */
} tu_how_t;

/* Reads up to len bytes within timeout_ms (from the call). Returns the bytes read; *how
 * says why it stopped; *nreads (may be NULL) counts the read calls that returned data. */
size_t tu_recv_n(int fd, void *buf, size_t len, int timeout_ms, tu_how_t *how, int *nreads);
const char *tu_how_name(tu_how_t how);

/* Calls cond(arg) until it returns non-zero or timeout_ms passes, pausing 5 ms between
 * calls. Returns the last result. For state with no event to wait on (stats counters). */
int tu_wait_until(int (*cond)(void *), void *arg, int timeout_ms);

/* Fills buf with a position-dependent pattern, so reordered or lost bytes show. */
void tu_pattern(unsigned char *buf, size_t len, unsigned seed);

#endif
