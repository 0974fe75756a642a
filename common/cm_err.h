/* cm_err.h - the one error enum shared by every program, and its strerror.
 *
 * Append-only: codes are logged and compared across versions, so never renumber.
 * Library codes (libcurl, SQLite, jansson, libmicrohttpd) are mapped to these at the
 * boundary of the module that calls the library; human detail goes into a caller's
 * buffer of CM_ERR_LEN bytes.
 */
#ifndef CM_ERR_H
#define CM_ERR_H

#define CM_ERR_LEN 256

typedef enum {
    CM_OK = 0,
    CM_ENOMEM = 1,         /* allocation failed */
    CM_EINVAL = 2,         /* bad argument or malformed input */
    CM_ETOOBIG = 3,        /* input over its size cap */
    CM_EIO = 4,            /* file or socket error */
    CM_ENOTFOUND = 5,      /* no such item */
    CM_EEXISTS = 6,        /* already there (duplicate) */
    CM_ESIG_MISSING = 7,   /* signature header absent */
    CM_ESIG_MALFORMED = 8, /* signature header does not parse */
    CM_ESIG_MISMATCH = 9,  /* no signature matches any key */
    CM_ESIG_STALE = 10,    /* timestamp older than the tolerance */
    CM_ESIG_FUTURE = 11,   /* timestamp further ahead than the tolerance */
    CM_ECONNECT = 12,      /* could not connect */
    CM_ETIMEOUT = 13,      /* timed out */
    CM_EHTTP = 14,         /* transport error other than connect/timeout */
    CM_ESTORE = 15,        /* database error */
    CM_ECONFIG = 16,       /* configuration problem */
    CM_ESTATE = 17,        /* operation not allowed in the current state */
    CM_EPROTO = 18,        /* peer answered something we cannot use */
    CM_EAGAIN = 19,        /* this way cannot tell; take the general path */
    CM__COUNT
} cm_err_t;

/* Static, never NULL, also for unknown codes. Thread-safe. */
const char *cm_strerror(cm_err_t err);

/* Writes a formatted message into err (CM_ERR_LEN bytes) when err is not NULL. */
void cm_errf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define CM_WUR __attribute__((warn_unused_result))

#endif
