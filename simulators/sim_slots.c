/* sim_slots.c - working-hours grid, conflict checks and time-zone offsets. */
#include "sim_slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_err.h"

int64_t sim_slots_day_start(int64_t t_ms)
{
    int64_t d = t_ms / SIM_DAY_MS;
    if (t_ms % SIM_DAY_MS < 0)
        d--;
    return d * SIM_DAY_MS;
}

static int overlaps(int64_t start, int64_t end, const sim_interval_t *busy, size_t nbusy)
{
    for (size_t i = 0; i < nbusy; i++)
        if (busy[i].start_ms < end && start < busy[i].end_ms)
            return 1;
    return 0;
}

sim_slot_state_t sim_slots_check(const sim_hours_t *h, int64_t len_ms, int64_t start_ms,
                                 const sim_interval_t *busy, size_t nbusy, int64_t now_ms)
{
    int64_t open = (int64_t)h->open_min * 60000, close = (int64_t)h->close_min * 60000;
    int64_t into_day = start_ms - sim_slots_day_start(start_ms);
    if (len_ms <= 0 || into_day < open || into_day + len_ms > close ||
        (into_day - open) % len_ms != 0)
        return SIM_SLOT_OFF_GRID;
    /* Past is checked after the grid so that a malformed time reads as "not available"
     * whatever the clock says; a well-formed past slot gets its own answer. */
    if (start_ms <= now_ms)
        return SIM_SLOT_PAST;
    if (overlaps(start_ms, start_ms + len_ms, busy, nbusy))
        return SIM_SLOT_TAKEN;
    return SIM_SLOT_FREE;
}

size_t sim_slots_list(const sim_hours_t *h, int64_t len_ms, int64_t from_ms, int64_t to_ms,
                      const sim_interval_t *busy, size_t nbusy, int64_t now_ms, sim_slot_fn fn,
                      void *ud)
{
    size_t n = 0;
    int64_t open = (int64_t)h->open_min * 60000, close = (int64_t)h->close_min * 60000;
    if (len_ms <= 0 || to_ms < from_ms)
        return 0;
    for (int64_t day = sim_slots_day_start(from_ms); day <= to_ms; day += SIM_DAY_MS) {
        for (int64_t s = day + open; s + len_ms <= day + close; s += len_ms) {
            if (s < from_ms || s > to_ms || s <= now_ms || overlaps(s, s + len_ms, busy, nbusy))
                continue;
            n++;
            if (fn(s, ud))
                return n;
        }
    }
    return n;
}

/* ---- time zones -------------------------------------------------------------------- */

/* A POSIX TZ rule date: Jn (julian, no Feb 29), n (zero-based, Feb 29 counted) or Mm.w.d. */
typedef struct {
    char kind; /* 'J', 'N' or 'M' */
    int a, b, c;
    int time_s; /* local time of the change, may be negative or beyond 24 h */
} tz_date_t;

struct sim_tz {
    int fixed_utc; /* the zone "UTC": luxon writes "Z" */
    size_t n;      /* transitions */
    int64_t *at;   /* transition instants, s */
    int32_t *off;  /* offset in force from at[i] on */
    int32_t first_off;
    int has_rule;             /* the footer's POSIX rule applies after the last transition */
    int32_t std_off, dst_off; /* east positive */
    int has_dst;
    tz_date_t start, end;
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* POSIX offset "[+-]hh[:mm[:ss]]" -> seconds; *s advanced. -1 on error via *ok. */
static int32_t posix_hms(const char **s, int *ok)
{
    int sign = 1, h = 0, m = 0, sec = 0;
    if (**s == '+' || **s == '-')
        sign = *(*s)++ == '-' ? -1 : 1;
    if (**s < '0' || **s > '9')
        *ok = 0;
    while (**s >= '0' && **s <= '9')
        h = h * 10 + *(*s)++ - '0';
    if (**s == ':') {
        (*s)++;
        while (**s >= '0' && **s <= '9')
            m = m * 10 + *(*s)++ - '0';
        if (**s == ':') {
            (*s)++;
            while (**s >= '0' && **s <= '9')
                sec = sec * 10 + *(*s)++ - '0';
        }
    }
    if (h > 167 || m > 59 || sec > 59)
        *ok = 0;
    return sign * (h * 3600 + m * 60 + sec);
}

static void posix_name(const char **s, int *ok)
{
    const char *p = *s;
    if (*p == '<') {
        while (*p && *p != '>')
            p++;
        if (*p != '>')
            *ok = 0;
        else
            p++;
    } else {
        while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
            p++;
    }
    if (p - *s < 3)
        *ok = 0;
    *s = p;
}

static int posix_int(const char **s)
{
    int v = 0;
    while (**s >= '0' && **s <= '9')
        v = v * 10 + *(*s)++ - '0';
    return v;
}

static void posix_date(const char **s, tz_date_t *d, int *ok)
{
    d->time_s = 7200; /* 02:00 unless given */
    if (**s == 'M') {
        (*s)++;
        d->kind = 'M';
        d->a = posix_int(s);
        if (*(*s)++ != '.')
            *ok = 0;
        d->b = posix_int(s);
        if (*(*s)++ != '.')
            *ok = 0;
        d->c = posix_int(s);
        if (d->a < 1 || d->a > 12 || d->b < 1 || d->b > 5 || d->c > 6)
            *ok = 0;
    } else if (**s == 'J') {
        (*s)++;
        d->kind = 'J';
        d->a = posix_int(s);
        if (d->a < 1 || d->a > 365)
            *ok = 0;
    } else if (**s >= '0' && **s <= '9') {
        d->kind = 'N';
        d->a = posix_int(s);
        if (d->a > 365)
            *ok = 0;
    } else {
        *ok = 0;
    }
    if (**s == '/') {
        (*s)++;
        d->time_s = posix_hms(s, ok);
    }
}

/* Parses a POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3" into tz. */
static int parse_posix(sim_tz_t *tz, const char *s)
{
    int ok = 1;
    posix_name(&s, &ok);
    tz->std_off = -posix_hms(&s, &ok); /* POSIX offsets are west positive */
    if (!ok)
        return -1;
    tz->has_rule = 1;
    if (!*s)
        return 0;
    posix_name(&s, &ok);
    tz->has_dst = 1;
    tz->dst_off = tz->std_off + 3600;
    if (*s && *s != ',')
        tz->dst_off = -posix_hms(&s, &ok);
    if (*s++ != ',')
        return -1;
    posix_date(&s, &tz->start, &ok);
    if (*s++ != ',')
        return -1;
    posix_date(&s, &tz->end, &ok);
    return ok && !*s ? 0 : -1;
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The local midnight (as seconds since the epoch, no offset applied) of rule date d in y. */
static int64_t rule_day(int64_t y, const tz_date_t *d)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t jan1 = days_from_civil(y, 1, 1);
    if (d->kind == 'J')
        return (jan1 + d->a - 1 + (is_leap(y) && d->a > 59)) * 86400;
    if (d->kind == 'N')
        return (jan1 + d->a) * 86400;
    int64_t first = days_from_civil(y, d->a, 1);
    int wday = (int)(((first % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
    int64_t day = 1 + (d->c - wday + 7) % 7 + (int64_t)(d->b - 1) * 7;
    int len = mdays[d->a - 1] + (d->a == 2 && is_leap(y));
    while (day > len)
        day -= 7;
    return (first + day - 1) * 86400;
}

static int32_t rule_offset(const sim_tz_t *tz, int64_t t)
{
    if (!tz->has_dst)
        return tz->std_off;
    int64_t days = (t + tz->std_off) / 86400 - ((t + tz->std_off) % 86400 < 0);
    /* The civil year of the local standard time. */
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t y = yoe + era * 400 + (mp >= 10);
    int64_t start = rule_day(y, &tz->start) + tz->start.time_s - tz->std_off;
    int64_t end = rule_day(y, &tz->end) + tz->end.time_s - tz->dst_off;
    int dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    return dst ? tz->dst_off : tz->std_off;
}

int sim_tz_offset_s(const sim_tz_t *tz, int64_t t_ms)
{
    int64_t t = t_ms / 1000 - (t_ms % 1000 < 0);
    if (tz->fixed_utc)
        return 0;
    if (tz->n == 0 || t < tz->at[0])
        return tz->n == 0 && tz->has_rule ? rule_offset(tz, t) : tz->first_off;
    if (t >= tz->at[tz->n - 1] && tz->has_rule)
        return rule_offset(tz, t);
    size_t lo = 0, hi = tz->n; /* the last transition at or before t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->off[lo];
}

char *sim_tz_iso(const sim_tz_t *tz, int64_t t_ms, char out[32])
{
    char local[25];
    int off = sim_tz_offset_s(tz, t_ms);
    int a = off < 0 ? -off : off;
    cm_clock_iso8601(t_ms + (int64_t)off * 1000, local);
    /* local is "YYYY-MM-DDTHH:MM:SS.mmmZ": keep the 23 characters before the Z. */
    if (tz->fixed_utc)
        snprintf(out, 32, "%.23sZ", local);
    else
        snprintf(out, 32, "%.23s%c%02d:%02d", local, off < 0 ? '-' : '+', a / 3600 % 100,
                 a / 60 % 60);
    return out;
}

void sim_tz_free(sim_tz_t **tzp)
{
    sim_tz_t *tz = tzp ? *tzp : NULL;
    if (!tz)
        return;
    free(tz->at);
    free(tz->off);
    free(tz);
    *tzp = NULL;
}

/* Reads the TZif data of v into tz (the 64-bit block when the file has one). */
static int parse_tzif(sim_tz_t *tz, const unsigned char *p, size_t len)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return -1;
    int version = p[4];
    size_t tsize = 4;
    for (int pass = 0; pass < 2; pass++) {
        if (len < 44)
            return -1;
        uint32_t isut = be32(p + 20), isstd = be32(p + 24), leap = be32(p + 28);
        uint32_t timecnt = be32(p + 32), typecnt = be32(p + 36), charcnt = be32(p + 40);
        if (timecnt > 100000 || typecnt == 0 || typecnt > 256 || leap > 100000)
            return -1;
        size_t body =
            timecnt * tsize + timecnt + typecnt * 6 + charcnt + leap * (tsize + 4) + isstd + isut;
        if (44 + body > len)
            return -1;
        if (pass == 0 && version >= '2') {
            p += 44 + body; /* skip the 32-bit block */
            len -= 44 + body;
            tsize = 8;
            continue;
        }
        const unsigned char *tt = p + 44, *idx = tt + timecnt * tsize, *types = idx + timecnt;
        tz->at = calloc(timecnt ? timecnt : 1, sizeof *tz->at);
        tz->off = calloc(timecnt ? timecnt : 1, sizeof *tz->off);
        if (!tz->at || !tz->off)
            return -1;
        for (uint32_t i = 0; i < timecnt; i++) {
            if (idx[i] >= typecnt)
                return -1;
            tz->at[i] = tsize == 8 ? be64(tt + i * 8) : (int32_t)be32(tt + i * 4);
            tz->off[i] = (int32_t)be32(types + idx[i] * 6);
        }
        tz->n = timecnt;
        tz->first_off = (int32_t)be32(types);
        if (tsize == 8) {
            /* The footer: "\n<POSIX TZ>\n". */
            const unsigned char *f = p + 44 + body, *end = p + len;
            if (f < end && *f == '\n') {
                const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
                if (nl && nl > f + 1 && nl - f < 128) {
                    char rule[128];
                    memcpy(rule, f + 1, (size_t)(nl - f - 1));
                    rule[nl - f - 1] = '\0';
                    if (parse_posix(tz, rule) != 0)
                        tz->has_rule = 0; /* the table alone still answers */
                }
            }
        }
        return 0;
    }
    return -1;
}

sim_tz_t *sim_tz_load(const char *name, char *err)
{
    /* A zone name is a relative path of the database: no "..", no leading '/', and only the
     * characters zone names use, so a request cannot read another file. */
    size_t len = name ? strlen(name) : 0;
    if (!len || len > 64 || name[0] == '/' || strstr(name, "..") ||
        strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-") != len) {
        cm_errf(err, "'%.64s' is not an IANA time zone name", name ? name : "");
        return NULL;
    }
    sim_tz_t *tz = calloc(1, sizeof *tz);
    if (!tz) {
        cm_errf(err, "out of memory");
        return NULL;
    }
    if (strcmp(name, "UTC") == 0) {
        tz->fixed_utc = 1; /* luxon's own fixed UTC zone, written "Z" */
        return tz;
    }
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    FILE *f = fopen(path, "rb");
    unsigned char *buf = malloc(1 << 16);
    size_t n = f && buf ? fread(buf, 1, 1 << 16, f) : 0;
    if (f)
        fclose(f);
    if (!buf || !n || n == 1 << 16 || parse_tzif(tz, buf, n) != 0) {
        cm_errf(err, "'%.64s' is not a time zone of the tz database", name);
        sim_tz_free(&tz);
    }
    free(buf);
    return tz;
}
