/* fuzz_replay.c - runs a fuzz target once on each file named on the command line (a
 * directory: each file in it, in name order). Linked instead of libFuzzer in builds
 * without -DBB_FUZZ=ON, so the seed corpora and committed crash reproducers are replayed
 * by ctest under the ordinary and the ASan+UBSan builds. Exit 0 when every input ran; a
 * failed check aborts, as under libFuzzer. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "cm_buf.h"
#include "fuzz.h"

/* Weak: only some targets have an initialiser. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int run_file(const char *path)
{
    char err[CM_ERR_LEN];
    cm_buf_t b;
    cm_buf_init(&b, 64u << 20);
    if (cm_buf_read_file(&b, path, err) != CM_OK) {
        fprintf(stderr, "fuzz_replay: %s\n", err);
        cm_buf_free(&b);
        return -1;
    }
    /* An exact-size copy, so ASan sees a read past the input's end. */
    uint8_t *copy = malloc(b.len ? b.len : 1);
    if (!copy)
        abort();
    if (b.len)
        memcpy(copy, b.data, b.len);
    (void)LLVMFuzzerTestOneInput(copy, b.len);
    free(copy);
    cm_buf_free(&b);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "fuzz_replay: cannot open %s\n", dir);
        return -1;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof *names);
            if (!names)
                abort();
        }
        names[count] = strdup(e->d_name);
        if (!names[count++])
            abort();
    }
    closedir(d);
    qsort(names, count, sizeof *names, cmp_names);
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            rc |= run_file(path);
            (*n)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n = 0;
    int rc = 0;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "fuzz_replay: no such file or directory: %s\n", argv[i]);
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            rc |= run_dir(argv[i], &n);
        } else {
            rc |= run_file(argv[i]);
            n++;
        }
    }
    if (n == 0) {
        fprintf(stderr, "fuzz_replay: no inputs (a seed corpus must not be empty)\n");
        return 1;
    }
    printf("%s: %zu inputs ran\n", argv[0], n);
    return rc ? 1 : 0;
}
