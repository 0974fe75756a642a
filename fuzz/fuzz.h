/* fuzz.h - what every fuzz target in fuzz/ defines, and the checks they make.
 *
 * Each fuzz_*.c defines LLVMFuzzerTestOneInput (and may define LLVMFuzzerInitialize). Built
 * with -DBB_FUZZ=ON and clang, it links against libFuzzer; in every other build it links
 * against fuzz_replay.c, which runs the files of its seed corpus once each, so the corpora
 * (and any crash reproducer added to them) are regression tests in the normal ctest run.
 *
 * A target checks properties the code under test promises (agreement with jansson, a sign
 * then verify round trip, a list that parses back to itself); a broken one is reported with
 * FUZZ_CHECK, which prints why and aborts, so libFuzzer saves the input as a crash.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A NUL-terminated copy of size bytes (caller frees); bytes after an inner NUL are still
 * there but a C string stops at it, as it would for a header value. */
char *fuzz_strndup(const uint8_t *data, size_t size);

/* Splits data at the first byte sep: *head (size *hlen) before it, the rest after it. When
 * there is no sep, the whole input is the head and the rest is empty. */
void fuzz_split(const uint8_t *data, size_t size, uint8_t sep, const uint8_t **head, size_t *hlen,
                const uint8_t **rest, size_t *rlen);

/* 1 when s (len bytes) is valid UTF-8 as jansson takes it: error messages end up in JSON
 * answers, where an invalid byte would lose the whole message. */
int fuzz_utf8_ok(const char *s, size_t len);

#endif
