// SPDX-License-Identifier: MIT
// plan: the arithmetic of balance, free of I/O so it can be tested alone — per-group resampling
// targets with imbalanced-learn's semantics, temperature/weight mixing rates, apportionment
// (largest remainder for splits, a house-monotone sequential rule for nested samples), and the
// per-unit decisions (kept or dropped, which split) computed from compact keys.
#ifndef KILN_BALANCE_PLAN_H
#define KILN_BALANCE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Largest-remainder apportionment: out[i] = floor(total * w[i] / sum w) plus one for the
// largest remainders (ties: lower index) so that sum out = total; each out[i] is within one of
// its exact share. w must have a positive sum.
void plan_apportion(uint64_t total, const double *w, size_t n, uint64_t *out);

// Sequential (house-monotone) apportionment of k units among n groups with sizes size[]:
// unit j goes to the group with the largest deficit (j * size[g] / sum - got[g]), ties to the
// lower index, never beyond size[g]. out for k is element-wise <= out for any larger k.
void plan_apportion_nested(uint64_t k, const uint64_t *size, size_t n, uint64_t *out);

// Mixing rates: rate_s ∝ min(n_s, cap)^(1/T) (cap 0 = none). Writes rates summing to 1.
void plan_temperature(const uint64_t *n, size_t k, double T, uint64_t cap, double *rate);

// Given group sizes and targets, the copies of each of a group's members: members are ranked
// by hash (ascending); with target t over size n, rank r gets t / n copies, plus one when
// r < t % n. copies_for_rank() answers for one rank.
static inline uint32_t
plan_copies_for_rank(uint64_t rank, uint64_t n, uint64_t t)
{
    if (!n)
        return 0;
    return (uint32_t)(t / n + (rank < t % n ? 1 : 0));
}

// Sorting helper: indices idx[0..n) ordered by key[idx] ascending, ties by index.
void plan_sort_by_key(uint32_t *idx, size_t n, const uint64_t *key);

#endif
