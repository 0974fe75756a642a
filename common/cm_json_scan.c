/* cm_json_scan.c - a validating JSON scanner that agrees with jansson (see the header).
 * Each rule below mirrors what jansson 2.14's lexer and parser do with cm_json_parse's
 * flags; test_cm_json_scan.c checks the agreement on many generated documents. */
#include "cm_json_scan.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
    SCAN_DEPTH = 64, /* deeper documents are left to jansson (its own limit is 2048) */
    PATH_DEPTH = 8,  /* levels tracked for matching wanted paths */
    MAX_KEYS = 32,   /* keys per object checked for duplicates here; more go to jansson */
};

typedef struct {
    const unsigned char *p, *end;
    cm_json_want_t *want;
    size_t nwant;
    /* The key of each object level on the way down to the current value; an array level
     * has none (klen SIZE_MAX), which no wanted path matches. */
    const unsigned char *key[PATH_DEPTH];
    size_t klen[PATH_DEPTH];
    int depth;
    cm_err_t rc; /* the first problem: CM_EINVAL or CM_EAGAIN */
} scan_t;

static int fail(scan_t *s, cm_err_t rc)
{
    if (!s->rc)
        s->rc = rc;
    return -1;
}

static void ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const unsigned char *p, const unsigned char *end, unsigned *out)
{
    unsigned v = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* One UTF-8 sequence starting at s->p (first byte >= 0x80): jansson refuses overlong
 * forms, surrogates and anything above U+10FFFF. */
static int utf8(scan_t *s)
{
    unsigned u = *s->p, n, cp;
    if (u >= 0xC2 && u <= 0xDF)
        n = 2, cp = u & 0x1F;
    else if (u >= 0xE0 && u <= 0xEF)
        n = 3, cp = u & 0x0F;
    else if (u >= 0xF0 && u <= 0xF4)
        n = 4, cp = u & 0x07;
    else
        return fail(s, CM_EINVAL);
    if ((size_t)(s->end - s->p) < n)
        return fail(s, CM_EINVAL);
    for (unsigned i = 1; i < n; i++) {
        unsigned c = s->p[i];
        if (c < 0x80 || c > 0xBF)
            return fail(s, CM_EINVAL);
        cp = (cp << 6) + (c & 0x3F);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (n == 3 && cp < 0x800) ||
        (n == 4 && cp < 0x10000))
        return fail(s, CM_EINVAL);
    s->p += n;
    return 0;
}

/* A string at s->p (on its opening quote); its raw span and whether it holds escapes. */
static int string(scan_t *s, const unsigned char **start, size_t *len, int *escaped)
{
    *escaped = 0;
    *start = ++s->p;
    while (s->p < s->end) {
        unsigned c = *s->p;
        if (c == '"') {
            *len = (size_t)(s->p - *start);
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return fail(s, CM_EINVAL); /* control characters must be escaped */
        if (c >= 0x80) {
            if (utf8(s))
                return -1;
            continue;
        }
        if (c != '\\') {
            s->p++;
            continue;
        }
        *escaped = 1;
        if (++s->p >= s->end)
            return fail(s, CM_EINVAL);
        c = *s->p;
        if (strchr("\"\\/bfnrt", (int)c) && c) {
            s->p++;
            continue;
        }
        unsigned cp, lo;
        if (c != 'u' || hex4(s->p + 1, s->end, &cp))
            return fail(s, CM_EINVAL);
        s->p += 5;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return fail(s, CM_EINVAL); /* a low surrogate alone */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* A high surrogate needs a low one right after it. */
            if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u' ||
                hex4(s->p + 2, s->end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return fail(s, CM_EINVAL);
            s->p += 6;
        }
    }
    return fail(s, CM_EINVAL);
}

static int is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* Grammar as jansson's lexer, plus its range checks: an integer must fit 64 bits, a real
 * must not overflow (underflow is fine). */
static int number(scan_t *s)
{
    const unsigned char *start = s->p;
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0') {
        s->p++;
        if (is_digit(s->p, s->end))
            return fail(s, CM_EINVAL); /* no leading zeros */
    } else if (is_digit(s->p, s->end)) {
        while (is_digit(s->p, s->end))
            s->p++;
    } else {
        return fail(s, CM_EINVAL);
    }
    int real = 0;
    if (s->p < s->end && *s->p == '.') {
        real = 1;
        if (!is_digit(++s->p, s->end))
            return fail(s, CM_EINVAL);
        while (is_digit(s->p, s->end))
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        real = 1;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!is_digit(s->p, s->end))
            return fail(s, CM_EINVAL);
        while (is_digit(s->p, s->end))
            s->p++;
    }
    size_t n = (size_t)(s->p - start);
    size_t digits = n - (*start == '-');
    if (!real && digits < 19)
        return 0; /* fits whatever it is */
    char buf[64];
    if (n >= sizeof buf)
        return real ? fail(s, CM_EAGAIN) : fail(s, CM_EINVAL); /* 63+ digits: too big */
    memcpy(buf, start, n);
    buf[n] = '\0';
    errno = 0;
    if (!real) {
        (void)strtoll(buf, NULL, 10);
        return errno == ERANGE ? fail(s, CM_EINVAL) : 0;
    }
    double d = strtod(buf, NULL);
    if (errno == ERANGE && (d > 1.0 || d < -1.0))
        return fail(s, CM_EINVAL); /* overflow; an underflow is accepted */
    return 0;
}

static int literal(scan_t *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n))
        return fail(s, CM_EINVAL);
    s->p += n;
    return 0;
}

/* A wanted path matches the keys of the levels 0..levels-1. */
static int path_is(const scan_t *s, const char *path, int levels)
{
    const char *p = path;
    for (int i = 0; i < levels; i++) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (s->klen[i] != n || memcmp(s->key[i], p, n))
            return 0;
        if (!dot)
            return i == levels - 1;
        p = dot + 1;
    }
    return 0;
}

static void offer(scan_t *s, const unsigned char *v, size_t len, int escaped)
{
    if (s->depth > PATH_DEPTH)
        return;
    for (size_t i = 0; i < s->nwant; i++)
        if (path_is(s, s->want[i].path, s->depth)) {
            if (escaped) {
                fail(s, CM_EAGAIN); /* the value needs decoding */
                return;
            }
            s->want[i].val = (const char *)v;
            s->want[i].len = len;
        }
}

static int value(scan_t *s);

static int object(scan_t *s)
{
    const unsigned char *keys[MAX_KEYS];
    size_t klens[MAX_KEYS], nkeys = 0;
    int level = s->depth++;
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        const unsigned char *k;
        size_t klen;
        int esc;
        if (s->p >= s->end || *s->p != '"' || string(s, &k, &klen, &esc))
            return fail(s, CM_EINVAL);
        if (esc || nkeys == MAX_KEYS)
            return fail(s, CM_EAGAIN); /* duplicate check on decoded keys: jansson's job */
        for (size_t i = 0; i < nkeys; i++)
            if (klens[i] == klen && !memcmp(keys[i], k, klen))
                return fail(s, CM_EINVAL); /* duplicate key */
        keys[nkeys] = k;
        klens[nkeys++] = klen;
        if (level < PATH_DEPTH) {
            s->key[level] = k;
            s->klen[level] = klen;
        }
        ws(s);
        if (s->p >= s->end || *s->p != ':')
            return fail(s, CM_EINVAL);
        s->p++;
        ws(s);
        if (value(s))
            return -1;
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            ws(s);
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            s->depth--;
            return 0;
        }
        return fail(s, CM_EINVAL);
    }
}

static int array(scan_t *s)
{
    int level = s->depth++;
    if (level < PATH_DEPTH)
        s->klen[level] = SIZE_MAX;
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        if (value(s))
            return -1;
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            ws(s);
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            s->depth--;
            return 0;
        }
        return fail(s, CM_EINVAL);
    }
}

static int value(scan_t *s)
{
    if (s->p >= s->end)
        return fail(s, CM_EINVAL);
    switch (*s->p) {
    case '{':
    case '[':
        if (s->depth >= SCAN_DEPTH)
            return fail(s, CM_EAGAIN);
        return *s->p == '{' ? object(s) : array(s);
    case '"': {
        const unsigned char *v;
        size_t len;
        int esc;
        if (string(s, &v, &len, &esc))
            return -1;
        offer(s, v, len, esc);
        return s->rc ? -1 : 0;
    }
    case 't':
        return literal(s, "true");
    case 'f':
        return literal(s, "false");
    case 'n':
        return literal(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return number(s);
        return fail(s, CM_EINVAL);
    }
}

cm_err_t cm_json_scan(const void *text, size_t len, size_t cap, cm_json_want_t *want, size_t nwant)
{
    for (size_t i = 0; i < nwant; i++) {
        want[i].val = NULL;
        want[i].len = 0;
    }
    if (len > cap)
        return CM_ETOOBIG;
    /* jansson's reader does not treat a NUL byte between tokens as an error everywhere;
     * rather than copy that quirk, such input takes the general path. */
    if (len && memchr(text, 0, len))
        return CM_EAGAIN;
    scan_t s = {.p = text, .end = (const unsigned char *)text + len, .want = want, .nwant = nwant};
    ws(&s);
    /* Like jansson without JSON_DECODE_ANY: an object or an array at the top. */
    if (s.p >= s.end || (*s.p != '{' && *s.p != '['))
        return CM_EINVAL;
    if (value(&s) == 0) {
        ws(&s);
        if (s.p != s.end)
            fail(&s, CM_EINVAL); /* something after the document */
    }
    if (s.rc)
        for (size_t i = 0; i < nwant; i++)
            want[i].val = NULL;
    return s.rc;
}
