/* rp_file.h - writing a report file: parent directories created, content replaced
 * atomically (temporary file + rename), so a CI job never picks up half a report.
 * Thread-safe as long as two threads do not write the same path.
 */
#ifndef RP_FILE_H
#define RP_FILE_H

#include <stddef.h>

#include "cm_err.h"

/* Creates every missing directory on the way to path's parent (like mkdir -p on dirname).
 * Returns CM_OK, or CM_EIO with err (CM_ERR_LEN, may be NULL) naming the directory. */
cm_err_t rp_mkdirs_for(const char *path, char *err) CM_WUR;

/* Writes len bytes to path via path.tmp and rename(2), creating parents. On error the old
 * file (if any) is untouched and the temporary file removed. */
cm_err_t rp_write_file(const char *path, const void *data, size_t len, char *err) CM_WUR;

#endif
