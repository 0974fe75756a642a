/* cm_err.c - error strings. */
#include "cm_err.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const names[CM__COUNT] = {
    [CM_OK] = "ok",
    [CM_ENOMEM] = "out of memory",
    [CM_EINVAL] = "invalid argument or input",
    [CM_ETOOBIG] = "input too large",
    [CM_EIO] = "I/O error",
    [CM_ENOTFOUND] = "not found",
    [CM_EEXISTS] = "already exists",
    [CM_ESIG_MISSING] = "signature missing",
    [CM_ESIG_MALFORMED] = "signature header malformed",
    [CM_ESIG_MISMATCH] = "signature does not match",
    [CM_ESIG_STALE] = "signature timestamp too old",
    [CM_ESIG_FUTURE] = "signature timestamp in the future",
    [CM_ECONNECT] = "connection failed",
    [CM_ETIMEOUT] = "timed out",
    [CM_EHTTP] = "HTTP transport error",
    [CM_ESTORE] = "store error",
    [CM_ECONFIG] = "configuration error",
    [CM_ESTATE] = "invalid state",
    [CM_EPROTO] = "protocol error",
    [CM_EAGAIN] = "needs the general path",
};

const char *cm_strerror(cm_err_t err)
{
    if ((unsigned)err >= CM__COUNT || !names[err])
        return "unknown error";
    return names[err];
}

void cm_errf(char *err, const char *fmt, ...)
{
    va_list ap;
    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(err, CM_ERR_LEN, fmt, ap);
    va_end(ap);
}
