// SPDX-License-Identifier: MIT
// half: IEEE 754 binary16 (fp16) and bfloat16 conversions, exact and branch-light.
// f32 -> f16 rounds to nearest even, overflow to ±Inf, NaN stays NaN (quiet);
// f32 -> bf16 rounds to nearest even, NaN stays NaN.
#ifndef KILN_HALF_H
#define KILN_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t
half_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float
half_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float
f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) // Inf / NaN
        return half_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return half_bits_f32(sign);
        // subnormal: value = man * 2^-24
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return half_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

static inline uint16_t
f32_to_f16(float f)
{
    uint32_t u = half_f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) // NaN: keep it quiet
        return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    if (a >= 0x477ff000u) // rounds to >= 65520: Inf
        return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) { // below the smallest normal: subnormal or zero
        // Scale so the fp16 subnormal unit (2^-24) becomes 1, round to nearest even via the
        // FPU (default rounding mode).
        float v = half_bits_f32(a) * 16777216.0f;
        uint32_t m = (uint32_t)__builtin_rintf(v);
        return (uint16_t)(sign | m);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u); // round to nearest even at bit 13
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

static inline float
bf16_to_f32(uint16_t h)
{
    return half_bits_f32((uint32_t)h << 16);
}

static inline uint16_t
f32_to_bf16(float f)
{
    uint32_t u = half_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#endif
