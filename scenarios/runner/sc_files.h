/* sc_files.h - finding scenario files and the file-system chores of a run: listing *.json and
 * *.yaml under directories in sorted order, reading whole files, removing temp dirs. Thread-safe
 * (no shared state).
 */
#ifndef SC_FILES_H
#define SC_FILES_H

#include <stddef.h>

#include "cm_err.h"

typedef struct {
    char **paths;
    size_t n, cap;
} sc_filelist_t;

/* Adds input to list: a file as it is (whatever its name: it was asked for), a
 * directory's *.json, *.yaml and *.yml files recursively (entries starting with "." or "_" skipped:
 * "_fixtures/" holds helper files), sorted by path. CM_ENOTFOUND with err (CM_ERR_LEN) naming a
 * missing input.
 */
cm_err_t sc_files_collect(sc_filelist_t *list, const char *input, char *err) CM_WUR;
void sc_files_free(sc_filelist_t *list);

/* Reads a whole file (at most cap bytes) into a new NUL-terminated string. */
cm_err_t sc_files_read(const char *path, size_t cap, char **out, size_t *len, char *err) CM_WUR;

/* Writes len bytes to path (created or truncated, mode 0600: it may hold secrets). */
cm_err_t sc_files_write(const char *path, const char *data, size_t len, char *err) CM_WUR;

/* rm -rf dir (does not follow symlinks). CM_EIO when something could not be removed. */
cm_err_t sc_files_remove_tree(const char *dir) CM_WUR;

#endif
