/* gw_testhook.c - crash points for tests. */
#include "gw_testhook.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cm_log.h"

static int enabled;
static char armed[64];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void gw_testhook_enable(void)
{
    enabled = 1;
}

int gw_testhook_enabled(void)
{
    return enabled;
}

cm_err_t gw_testhook_arm(const char *point)
{
    if (!enabled)
        return CM_ESTATE;
    if (strlen(point) >= sizeof armed)
        return CM_EINVAL;
    pthread_mutex_lock(&mu);
    snprintf(armed, sizeof armed, "%s", point);
    pthread_mutex_unlock(&mu);
    return CM_OK;
}

void gw_testhook_point(const char *point)
{
    if (!enabled)
        return;
    pthread_mutex_lock(&mu);
    int hit = armed[0] && !strcmp(armed, point);
    pthread_mutex_unlock(&mu);
    if (hit) {
        CM_ERROR("gw.testhook", "crash point %s reached: exiting as if killed", point);
        _exit(137);
    }
}
