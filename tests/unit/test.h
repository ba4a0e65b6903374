// SPDX-License-Identifier: MIT
// test.h: the unit-test harness. CHECK counts passes and failures without stopping;
// test_summary() prints "N passed, M failed" and returns the exit status (1 if any failed).
//
//   int main(void) { CHECK(1 + 1 == 2); CHECK_EQ_INT(f(), 3); return test_summary(); }
#ifndef KILN_TEST_H
#define KILN_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int test_passed, test_failed;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (cond) {                                                                            \
            test_passed++;                                                                     \
        } else {                                                                               \
            test_failed++;                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);           \
        }                                                                                      \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                   \
    do {                                                                                       \
        if (cond) {                                                                            \
            test_passed++;                                                                     \
        } else {                                                                               \
            test_failed++;                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                     \
    do {                                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                                    \
        CHECK_MSG(a_ == b_, "%lld != %lld", a_, b_);                                           \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                     \
    do {                                                                                       \
        const char *a_ = (a), *b_ = (b);                                                       \
        CHECK_MSG(a_ && b_ && strcmp(a_, b_) == 0, "\"%s\" != \"%s\"", a_ ? a_ : "(null)",     \
                  b_ ? b_ : "(null)");                                                         \
    } while (0)

#define CHECK_EQ_MEM(a, an, b, bn)                                                             \
    do {                                                                                       \
        size_t an_ = (an), bn_ = (bn);                                                         \
        CHECK_MSG(an_ == bn_ && memcmp((a), (b), an_) == 0, "\"%.*s\" != \"%.*s\"", (int)an_,  \
                  (const char *)(a), (int)bn_, (const char *)(b));                             \
    } while (0)

// |a - b| <= tol * max(1, |b|)
#define CHECK_NEAR(a, b, tol)                                                                  \
    do {                                                                                       \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                         \
        double s_ = fabs(b_) > 1 ? fabs(b_) : 1;                                               \
        CHECK_MSG(fabs(a_ - b_) <= t_ * s_, "%.9g vs %.9g (tol %g)", a_, b_, t_);              \
    } while (0)

static inline int
test_summary(void)
{
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

#endif
