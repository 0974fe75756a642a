/* gw_testhook.h - named crash points for the crash tests. Off unless the gateway runs with
 * --test-hooks; then the admin API can arm one point, and the next thread to pass it ends
 * the process at once with _exit(137), as a kill -9 would, leaving no chance to clean up.
 * Thread-safe. */
#ifndef GW_TESTHOOK_H
#define GW_TESTHOOK_H

#include "cm_err.h"

void gw_testhook_enable(void);
int gw_testhook_enabled(void);
/* Arms point (copied; "" disarms). CM_ESTATE when hooks are off, CM_EINVAL if too long. */
cm_err_t gw_testhook_arm(const char *point) CM_WUR;
/* Exits the process if point is the armed one. */
void gw_testhook_point(const char *point);

#endif
