/* rp_file.c - mkdir -p for a file's parent, atomic whole-file writes. */
#include "rp_file.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

cm_err_t rp_mkdirs_for(const char *path, char *err)
{
    char dir[PATH_MAX];
    if (strlen(path) >= sizeof dir) {
        cm_errf(err, "%s: path too long", path);
        return CM_EINVAL;
    }
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return CM_OK; /* current directory or the root: nothing to create */
    *slash = '\0';
    /* Walk the components left to right; EEXIST is the common, fine case. */
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
                cm_errf(err, "cannot create directory %s: %s", dir, strerror(errno));
                return CM_EIO;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return CM_OK;
}

cm_err_t rp_write_file(const char *path, const void *data, size_t len, char *err)
{
    char tmp[PATH_MAX];
    cm_err_t rc = rp_mkdirs_for(path, err);
    if (rc)
        return rc;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        cm_errf(err, "%s: path too long", path);
        return CM_EINVAL;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        cm_errf(err, "cannot write %s: %s", tmp, strerror(errno));
        return CM_EIO;
    }
    int bad = fwrite(data, 1, len, f) != len;
    bad |= fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        cm_errf(err, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        rc = CM_EIO;
    }
    return rc;
}
