/* rp_timeline.c - which lane each mark of a case goes in. */
#include "rp_timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE ((size_t)-1)

/* The distinct actors of the marks, in order of first appearance. A generated scenario has
 * hundreds of step actors and tens of thousands of marks, so they are found by hash. */
typedef struct {
    const char **name;
    size_t *count; /* marks */
    int *in_lines; /* it logged (else it only recorded events) */
    size_t *named; /* its index in c->lanes, or NONE */
    size_t *lane;  /* the lane it is drawn in */
    size_t n;
    size_t *table; /* open addressing: actor index + 1, 0 when free */
    size_t mask;
} actors_t;

/* Merged named lanes: consecutive ones with the same label and depth. */
typedef struct {
    const rp_lane_t *first;
    int failed, drawn;
    size_t nmarks;
    size_t lane;
} slot_t;

const rp_line_t *rp_tl_mark(const rp_case_t *c, size_t i)
{
    return i < c->nlines ? &c->lines[i] : &c->events[i - c->nlines];
}

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void actors_free(actors_t *a)
{
    free(a->name);
    free(a->count);
    free(a->in_lines);
    free(a->named);
    free(a->lane);
    free(a->table);
}

/* Fills a with the actors of c's marks and act[i] with mark i's actor. */
static cm_err_t actors_find(const rp_case_t *c, size_t total, actors_t *a, size_t *act)
{
    size_t cap = 16;
    while (cap < 2 * total)
        cap *= 2;
    a->mask = cap - 1;
    a->table = calloc(cap, sizeof *a->table);
    a->name = calloc(total ? total : 1, sizeof *a->name);
    a->count = calloc(total ? total : 1, sizeof *a->count);
    a->in_lines = calloc(total ? total : 1, sizeof *a->in_lines);
    if (!a->table || !a->name || !a->count || !a->in_lines)
        return CM_ENOMEM;
    for (size_t i = 0; i < total; i++) {
        const char *actor = rp_tl_mark(c, i)->actor;
        size_t h = hash(actor) & a->mask;
        while (a->table[h] && strcmp(a->name[a->table[h] - 1], actor) != 0)
            h = (h + 1) & a->mask;
        if (!a->table[h]) {
            a->name[a->n] = actor;
            a->table[h] = ++a->n;
        }
        act[i] = a->table[h] - 1;
        a->count[act[i]]++;
        a->in_lines[act[i]] |= i < c->nlines;
    }
    a->named = malloc((a->n ? a->n : 1) * sizeof *a->named);
    a->lane = malloc((a->n ? a->n : 1) * sizeof *a->lane);
    if (!a->named || !a->lane)
        return CM_ENOMEM;
    for (size_t k = 0; k < a->n; k++) {
        const rp_lane_t *l = rp_case_lane(c, a->name[k]);
        a->named[k] = l ? (size_t)(l - c->lanes) : NONE;
    }
    return CM_OK;
}

static rp_tl_lane_t *add_lane(rp_timeline_t *t, const char *label, int depth, int failed, int step)
{
    rp_tl_lane_t *l = &t->lanes[t->nlanes++];
    memset(l, 0, sizeof *l);
    l->label = label;
    l->depth = depth;
    l->failed = failed;
    l->step = step;
    return l;
}

/* Merges the named lanes into slots (slot_of: per named lane; one that joins another is in
 * its slot) and decides which are drawn: those with marks, the failing one, and the
 * ancestors of those (a repeat's header). */
static size_t make_slots(const rp_case_t *c, const actors_t *a, slot_t *slots, size_t *slot_of)
{
    size_t ns = 0;
    for (size_t i = 0; i < c->nlanes; i++) {
        const rp_lane_t *l = &c->lanes[i], *into = l->joins[0] ? rp_case_lane(c, l->joins) : NULL;
        if (into && into < l) {
            slot_of[i] = slot_of[into - c->lanes];
        } else {
            slot_of[i] = ns;
            slots[ns++] = (slot_t){.first = l, .lane = NONE};
        }
        slots[slot_of[i]].failed |= l->failed;
    }
    for (size_t k = 0; k < a->n; k++)
        if (a->named[k] != NONE)
            slots[slot_of[a->named[k]]].nmarks += a->count[k];
    for (size_t s = 0; s < ns; s++)
        slots[s].drawn |= slots[s].nmarks > 0 || slots[s].failed;
    for (size_t s = ns; s-- > 0;) {
        int depth = slots[s].first->depth;
        for (size_t p = s; slots[s].drawn && depth > 0 && p-- > 0;) {
            if (slots[p].first->depth < depth) {
                if (slots[p].drawn)
                    break; /* its own ancestors are marked when its turn comes */
                slots[p].drawn = 1;
                depth = slots[p].first->depth;
            }
        }
    }
    return ns;
}

/* One lane per drawn slot, or when they are more than budget, one per group (the failing
 * step on its own). Returns the number of drawn slots. */
static size_t step_lanes(rp_timeline_t *t, slot_t *slots, size_t ns, size_t budget)
{
    size_t drawn = 0, first = t->nlanes;
    for (size_t s = 0; s < ns; s++)
        drawn += slots[s].drawn != 0;
    t->grouped = drawn > budget;
    for (size_t s = 0; s < ns; s++) {
        const rp_lane_t *l = slots[s].first;
        if (!slots[s].drawn || (t->grouped && !slots[s].nmarks && !slots[s].failed))
            continue;
        if (!t->grouped || slots[s].failed) {
            slots[s].lane = t->nlanes;
            add_lane(t, l->label, t->grouped ? 0 : l->depth, slots[s].failed, 1);
            continue;
        }
        for (size_t k = first; k < t->nlanes && slots[s].lane == NONE; k++)
            if (!t->lanes[k].failed && t->lanes[k].label == NULL &&
                !strcmp(t->lanes[k].name, l->group))
                slots[s].lane = k;
        if (slots[s].lane == NONE) {
            slots[s].lane = t->nlanes;
            snprintf(add_lane(t, NULL, 0, 0, 1)->name, sizeof t->lanes[0].name, "%s", l->group);
        }
        t->lanes[slots[s].lane].nmarks++; /* counts steps until the marks are counted */
    }
    for (size_t k = first; t->grouped && k < t->nlanes; k++) {
        rp_tl_lane_t *g = &t->lanes[k];
        if (g->label)
            continue;
        char group[sizeof g->name];
        snprintf(group, sizeof group, "%s", g->name);
        snprintf(g->name, sizeof g->name, "%zu %.40s step%s", g->nmarks, *group ? group : "other",
                 g->nmarks == 1 ? "" : "s");
        g->label = g->name;
        g->nmarks = 0;
    }
    return drawn;
}

/* Lanes for the parts whose in_lines is want; past RP_TL_MAX_PARTS they share *other. */
static void part_lanes(rp_timeline_t *t, actors_t *a, int want, size_t *parts, size_t *other)
{
    for (size_t k = 0; k < a->n; k++) {
        if (a->named[k] != NONE || a->in_lines[k] != want)
            continue;
        if (++*parts < RP_TL_MAX_PARTS) {
            a->lane[k] = t->nlanes;
            add_lane(t, a->name[k], 0, 0, 0);
        } else {
            a->lane[k] = NONE; /* the "other" lane, placed last */
            (*other)++;
        }
    }
}

void rp_timeline_free(rp_timeline_t *t)
{
    free(t->lanes);
    free(t->lane_of);
    memset(t, 0, sizeof *t);
}

cm_err_t rp_timeline_build(const rp_case_t *c, rp_timeline_t *t)
{
    size_t total = c->nlines + c->nevents;
    actors_t a = {0};
    size_t *act = malloc((total ? total : 1) * sizeof *act);
    slot_t *slots = malloc((c->nlanes ? c->nlanes : 1) * sizeof *slots);
    size_t *slot_of = malloc((c->nlanes ? c->nlanes : 1) * sizeof *slot_of);
    memset(t, 0, sizeof *t);
    /* At most RP_TL_MAX_PARTS part lanes (with "other"), the steps' lanes or groups, and
     * each failing step's own. */
    t->lanes = malloc((RP_TL_MAX_PARTS + RP_TL_MAX_LANES + c->nlanes) * sizeof *t->lanes);
    t->lane_of = malloc((total ? total : 1) * sizeof *t->lane_of);
    cm_err_t rc = act && slots && slot_of && t->lanes && t->lane_of ? CM_OK : CM_ENOMEM;
    if (!rc)
        rc = actors_find(c, total, &a, act);
    if (!rc) {
        size_t nparts = 0, parts = 0, other = 0, ns = make_slots(c, &a, slots, slot_of);
        for (size_t k = 0; k < a.n; k++)
            nparts += a.named[k] == NONE;
        nparts = nparts < RP_TL_MAX_PARTS ? nparts : RP_TL_MAX_PARTS;
        /* Parts that logged, steps, parts that only recorded events, other. */
        part_lanes(t, &a, 1, &parts, &other);
        t->nsteps = step_lanes(t, slots, ns, RP_TL_MAX_LANES - nparts);
        part_lanes(t, &a, 0, &parts, &other);
        if (other)
            snprintf(add_lane(t, NULL, 0, 0, 0)->name, sizeof t->lanes[0].name,
                     "other (%zu actors)", other);
        for (size_t k = 0; k < a.n; k++) {
            if (a.named[k] != NONE)
                a.lane[k] = slots[slot_of[a.named[k]]].lane;
            if (a.lane[k] == NONE) /* only parts past RP_TL_MAX_PARTS */
                a.lane[k] = t->nlanes - 1;
        }
    }
    for (size_t i = 0; !rc && i < t->nlanes; i++)
        if (!t->lanes[i].label)
            t->lanes[i].label = t->lanes[i].name;
    t->end_ms = 1;
    for (size_t i = 0; !rc && i < total; i++) {
        int64_t ms = rp_tl_mark(c, i)->t_ms;
        rp_tl_lane_t *l = &t->lanes[t->lane_of[i] = a.lane[act[i]]];
        if (!l->nmarks++ || ms < l->first)
            l->first = ms;
        if (l->nmarks == 1 || ms > l->last)
            l->last = ms;
        if (ms > t->end_ms)
            t->end_ms = ms;
    }
    if (!rc && c->time_s * 1000.0 > (double)t->end_ms)
        t->end_ms = (int64_t)(c->time_s * 1000.0);
    t->nmarks = total;
    actors_free(&a);
    free(act);
    free(slots);
    free(slot_of);
    if (rc)
        rp_timeline_free(t);
    return rc;
}
