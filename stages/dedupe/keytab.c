// SPDX-License-Identifier: MIT
// keytab: the exact-key table of dedupe (contract in keytab.h).
#include "keytab.h"
#include "util.h"

#include <stdlib.h>

int64_t
keytab_get(const struct keytab *t, uint64_t k0, uint64_t k1)
{
    if (!t->cap)
        return -1;
    for (size_t i = (size_t)k0 & (t->cap - 1); t->s[i].v1; i = (i + 1) & (t->cap - 1))
        if (t->s[i].k0 == k0 && t->s[i].k1 == k1)
            return (int64_t)(t->s[i].v1 - 1);
    return -1;
}

static void
slot_insert(struct keytab_slot *s, size_t cap, const struct keytab_slot *x)
{
    size_t i = (size_t)x->k0 & (cap - 1);
    while (s[i].v1)
        i = (i + 1) & (cap - 1);
    s[i] = *x;
}

void
keytab_put(struct keytab *t, uint64_t k0, uint64_t k1, uint64_t value)
{
    if ((t->n + 1) * 2 > t->cap) {
        size_t nc = t->cap ? 2 * t->cap : 4096;
        struct keytab_slot *ns = xcalloc(nc, sizeof *ns);
        for (size_t i = 0; i < t->cap; i++)
            if (t->s[i].v1)
                slot_insert(ns, nc, &t->s[i]);
        free(t->s);
        t->s = ns;
        t->cap = nc;
    }
    slot_insert(t->s, t->cap, &(struct keytab_slot){k0, k1, value + 1});
    t->n++;
}

size_t
keytab_bytes(const struct keytab *t)
{
    return t->cap * sizeof *t->s;
}

void
keytab_free(struct keytab *t)
{
    free(t->s);
    *t = (struct keytab){0};
}
