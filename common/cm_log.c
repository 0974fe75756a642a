/* cm_log.c - JSON-lines logger with masking of personal data and secrets. */
#include "cm_log.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_clock.h"

cm_log_level_t cm_log_min_level = CM_LOG_INFO;
static int log_fd = 2;
static _Thread_local char tl_cid[64];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int cm_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (name && strcmp(name, level_names[i]) == 0) {
            cm_log_min_level = (cm_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

int cm_log_limit_take(cm_log_limit_t *l, int64_t now_ms, uint64_t *suppressed)
{
    int ok = 0;
    pthread_mutex_lock(&l->mu);
    if (!l->window_start_ms || now_ms - l->window_start_ms >= l->window_ms) {
        l->window_start_ms = now_ms ? now_ms : 1; /* 0 means "no window yet" */
        l->written = 0;
    }
    if (l->written < l->per_window) {
        l->written++;
        *suppressed = l->suppressed;
        l->suppressed = 0;
        ok = 1;
    } else {
        l->suppressed++;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

cm_err_t cm_log_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return CM_EIO;
    log_fd = fd;
    return CM_OK;
}

void cm_log_set_cid(const char *cid)
{
    if (!cid) {
        tl_cid[0] = '\0';
        return;
    }
    snprintf(tl_cid, sizeof tl_cid, "%s", cid);
}

const char *cm_log_cid(void)
{
    return tl_cid;
}

static int is_email_char(int c)
{
    return isalnum(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '%';
}

/* Secret token prefixes of the providers we talk to; the token runs to the next
 * character that cannot be part of a key. */
static const char *const secret_prefixes[] = {"sk_",  "rk_",  "pk_live_", "whsec_",
                                              "key_", "cal_", "Bearer ",  NULL};

static int is_key_char(int c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '+' || c == '/' || c == '=' || c == '.';
}

/* "2050-09-05..." is a date, not a phone number split by dashes. */
static int is_date(const char *s, size_t len)
{
    return len >= 10 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[3]) &&
           s[4] == '-' && isdigit((unsigned char)s[5]) && isdigit((unsigned char)s[6]) &&
           s[7] == '-' && isdigit((unsigned char)s[8]) && isdigit((unsigned char)s[9]);
}

static void put(char *out, size_t cap, size_t *o, char c)
{
    if (*o + 1 < cap)
        out[(*o)++] = c;
}

static void puts_(char *out, size_t cap, size_t *o, const char *s)
{
    while (*s)
        put(out, cap, o, *s++);
}

/* 1 when the text from j on is the rest of an e-mail address: address characters up to an
 * '@' followed by a letter or digit. */
static int email_follows(const char *in, size_t n, size_t j)
{
    while (j < n && is_email_char((unsigned char)in[j]))
        j++;
    return j + 1 < n && in[j] == '@' && isalnum((unsigned char)in[j + 1]);
}

/* A phone number candidate from i up to limit: an optional '+', then digits possibly split
 * by single spaces, dashes or dots. Returns where it ends; counts its digits, says whether
 * a separator other than a dot split it, where its last space is (i when none) and its last
 * two digits. */
typedef struct {
    int plus, digits, sep;
    size_t last_space;
    char tail[2];
} phone_t;

static size_t phone_scan(const char *in, size_t i, size_t limit, phone_t *ph)
{
    memset(ph, 0, sizeof *ph);
    ph->plus = in[i] == '+';
    ph->last_space = i;
    size_t j = i + (size_t)ph->plus;
    while (j < limit) {
        if (isdigit((unsigned char)in[j])) {
            ph->tail[0] = ph->tail[1];
            ph->tail[1] = in[j];
            ph->digits++;
            j++;
        } else if ((in[j] == ' ' || in[j] == '-' || in[j] == '.') && j + 1 < limit &&
                   isdigit((unsigned char)in[j + 1])) {
            ph->sep |= in[j] != '.'; /* dots alone make version numbers and IPs */
            if (in[j] == ' ')
                ph->last_space = j;
            j++;
        } else {
            break;
        }
    }
    return j;
}

/* Token boundaries are judged on the text as masked so far (prev is the last character
 * written, or would have been when out is full), not on the input: a mask ends a token,
 * so what follows it is looked at afresh, and masking a masked text changes nothing. */
void cm_log_mask(const char *in, char *out, size_t cap)
{
    size_t o = 0, n = strlen(in);
    size_t i = 0;
    unsigned char prev = 0; /* 0: the start of the text */
    if (!cap)
        return;
    while (i < n) {
        /* Secrets: only at a token boundary, so "risk_level" is left alone. */
        int matched = 0;
        if (!isalnum(prev)) {
            for (int k = 0; secret_prefixes[k]; k++) {
                size_t pl = strlen(secret_prefixes[k]);
                if (strncmp(in + i, secret_prefixes[k], pl) == 0 && i + pl < n &&
                    is_key_char((unsigned char)in[i + pl])) {
                    size_t j = i + pl;
                    while (j < n && is_key_char((unsigned char)in[j]))
                        j++;
                    puts_(out, cap, &o, secret_prefixes[k]);
                    puts_(out, cap, &o, "***");
                    prev = '*';
                    i = j;
                    matched = 1;
                    break;
                }
            }
        }
        if (matched)
            continue;
        /* E-mail: find '@' with an address-like run on both sides. */
        if (is_email_char((unsigned char)in[i]) && !is_email_char(prev)) {
            size_t j = i;
            while (j < n && is_email_char((unsigned char)in[j]))
                j++;
            if (j < n && in[j] == '@' && j + 1 < n && isalnum((unsigned char)in[j + 1])) {
                put(out, cap, &o, in[i]);
                puts_(out, cap, &o, "***");
                prev = '*';
                i = j;
                continue;
            }
        }
        /* Phone: an optional '+', then 7 to 15 digits possibly split by single spaces,
         * dashes or dots. A bare digit run counts only with a '+' or a separator, so ids,
         * counts and millisecond timestamps stay readable. Keeps the last two digits. */
        if ((in[i] == '+' && i + 1 < n && isdigit((unsigned char)in[i + 1])) ||
            (isdigit((unsigned char)in[i]) && !isalnum(prev))) {
            phone_t ph;
            size_t j = phone_scan(in, i, n, &ph);
            /* "12 34@example.com": the last group begins an e-mail address, which must
             * not be taken for the end of a number (nor copied unmasked with it). */
            if (j < n && ph.last_space > i && email_follows(in, n, j))
                j = phone_scan(in, i, ph.last_space, &ph);
            if (!ph.plus && is_date(in + i, j - i))
                ph.sep = 0;
            if (ph.digits >= 7 && ph.digits <= 15 && (ph.plus || ph.sep) &&
                (j >= n || !isalnum((unsigned char)in[j])) && !email_follows(in, n, j)) {
                puts_(out, cap, &o, ph.plus ? "+***" : "***");
                put(out, cap, &o, ph.tail[0]);
                put(out, cap, &o, ph.tail[1]);
                prev = (unsigned char)ph.tail[1];
                i = j;
                continue;
            }
            while (i < j) { /* not a phone number: copy the run unchanged */
                prev = (unsigned char)in[i];
                put(out, cap, &o, in[i++]);
            }
            continue;
        }
        prev = (unsigned char)in[i];
        put(out, cap, &o, in[i++]);
    }
    out[o] = '\0';
}

void cm_log_write(cm_log_level_t level, const char *comp, const char *fmt, ...)
{
    char msg[2048], masked[2048], ts[25];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cm_log_mask(msg, masked, sizeof masked);

    cm_buf_t b;
    cm_buf_init(&b, 8192);
    cm_err_t rc = cm_buf_printf(
        &b, "{\"ts\":\"%s\",\"level\":\"%s\",\"comp\":", cm_clock_iso8601(cm_clock_now_ms(), ts),
        level_names[level <= CM_LOG_ERROR ? level : CM_LOG_ERROR]);
    if (!rc)
        rc = cm_buf_add_json_str(&b, comp ? comp : "");
    if (!rc && tl_cid[0]) {
        rc = cm_buf_addstr(&b, ",\"cid\":");
        if (!rc)
            rc = cm_buf_add_json_str(&b, tl_cid);
    }
    if (!rc)
        rc = cm_buf_addstr(&b, ",\"msg\":");
    if (!rc)
        rc = cm_buf_add_json_str(&b, masked);
    if (!rc)
        rc = cm_buf_addstr(&b, "}\n");
    if (!rc) {
        /* One write per line so concurrent threads never interleave within a line. */
        ssize_t w = write(log_fd, b.data, b.len);
        (void)w;
    }
    cm_buf_free(&b);
}
