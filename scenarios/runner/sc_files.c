/* sc_files.c - directory walking with readdir (no nftw: it has no user pointer, and a
 * global list would not survive a parallel runner), whole-file I/O, rm -rf. */
#include "sc_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_buf.h"

static cm_err_t add(sc_filelist_t *l, const char *path)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 32;
        char **p = realloc(l->paths, ncap * sizeof *p);
        if (!p)
            return CM_ENOMEM;
        l->paths = p;
        l->cap = ncap;
    }
    if (!(l->paths[l->n] = strdup(path)))
        return CM_ENOMEM;
    l->n++;
    return CM_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static cm_err_t walk(sc_filelist_t *l, const char *dir, int depth, char *err)
{
    if (depth > 32) {
        cm_errf(err, "%s: directories nested too deep", dir);
        return CM_EINVAL;
    }
    DIR *d = opendir(dir);
    if (!d) {
        cm_errf(err, "%s: %s", dir, strerror(errno));
        return CM_EIO;
    }
    cm_err_t rc = CM_OK;
    struct dirent *e;
    char path[PATH_MAX];
    while (!rc && (e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.' || e->d_name[0] == '_') /* hidden, or helpers (_fixtures/) */
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = walk(l, path, depth + 1, err);
        else if (S_ISREG(st.st_mode) &&
                 (ends_with(e->d_name, ".json") || ends_with(e->d_name, ".yaml") ||
                  ends_with(e->d_name, ".yml")))
            rc = add(l, path);
    }
    closedir(d);
    return rc;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

cm_err_t sc_files_collect(sc_filelist_t *l, const char *input, char *err)
{
    struct stat st;
    if (stat(input, &st) != 0) {
        cm_errf(err, "%s: %s", input, strerror(errno));
        return CM_ENOTFOUND;
    }
    if (!S_ISDIR(st.st_mode)) {
        cm_err_t rc = add(l, input);
        if (rc)
            cm_errf(err, "out of memory");
        return rc;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", input);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = '\0';
    size_t first = l->n;
    cm_err_t rc = walk(l, dir, 0, err);
    if (!rc)
        qsort(l->paths + first, l->n - first, sizeof *l->paths, by_path);
    return rc;
}

void sc_files_free(sc_filelist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}

cm_err_t sc_files_read(const char *path, size_t cap, char **out, size_t *len, char *err)
{
    cm_buf_t b;
    *out = NULL;
    cm_buf_init(&b, cap);
    cm_err_t rc = cm_buf_read_file(&b, path, err);
    if (rc) {
        cm_buf_free(&b);
        return rc;
    }
    if (len)
        *len = b.len;
    if (!(*out = cm_buf_take(&b))) {
        cm_errf(err, "out of memory");
        return CM_ENOMEM;
    }
    return CM_OK;
}

cm_err_t sc_files_write(const char *path, const char *data, size_t len, char *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        cm_errf(err, "cannot write %s: %s", path, strerror(errno));
        return CM_EIO;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            cm_errf(err, "cannot write %s: %s", path, strerror(errno));
            close(fd);
            return CM_EIO;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        cm_errf(err, "cannot write %s: %s", path, strerror(errno));
        return CM_EIO;
    }
    return CM_OK;
}

cm_err_t sc_files_remove_tree(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) != 0)
        return errno == ENOENT ? CM_OK : CM_EIO;
    if (!S_ISDIR(st.st_mode))
        return unlink(dir) == 0 ? CM_OK : CM_EIO;
    DIR *d = opendir(dir);
    if (!d)
        return CM_EIO;
    cm_err_t rc = CM_OK;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) {
            rc = CM_EIO;
            continue;
        }
        if (sc_files_remove_tree(path) != CM_OK)
            rc = CM_EIO;
    }
    closedir(d);
    if (rmdir(dir) != 0)
        rc = CM_EIO;
    return rc;
}
