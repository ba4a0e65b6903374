// SPDX-License-Identifier: MIT
// keytab: dedupe's exact-key table, shared by the one-process engine (engine.c) and the
// sharded cluster phase (sharded.c). Keys are 128-bit hashes (k0 already uniformly
// distributed, so it indexes directly); each maps to one 64-bit value. Open addressing with
// linear probing, at most half full, grown by doubling: 24 bytes per slot, 48-96 bytes per key.
#ifndef KILN_DEDUPE_KEYTAB_H
#define KILN_DEDUPE_KEYTAB_H

#include <stddef.h>
#include <stdint.h>

struct keytab_slot {
    uint64_t k0, k1, v1; // v1 = value + 1; 0 = empty slot
};

struct keytab {
    struct keytab_slot *s;
    size_t cap, n; // cap a power of two (or 0)
};

// The value stored for (k0, k1), or -1 when the key is absent (values are < UINT64_MAX).
int64_t keytab_get(const struct keytab *t, uint64_t k0, uint64_t k1);
// Adds a key that is not in the table yet.
void keytab_put(struct keytab *t, uint64_t k0, uint64_t k1, uint64_t value);
size_t keytab_bytes(const struct keytab *t);
void keytab_free(struct keytab *t);

#endif
