// SPDX-License-Identifier: MIT
// quant: block quantization and dequantization (see quant.h for the block layouts).
//
// The scalar quantizers follow ggml's reference quantizers (quantize_row_*_ref in
// ggml-quants.c) operation by operation, in the same order and with the same float types, so
// that files are byte-identical to llama-quantize's. That includes ggml's float-to-int idioms
// (nearest_int's magic-number rounding, roundf, truncation); where C would leave a conversion
// undefined (non-finite inputs) we return what x86 does (0x80000000, low byte 0).
//
// The vector paths never reorder a floating-point operation: Q8_0 (AVX2) vectorizes over the
// 32 values of a block (only max and elementwise math, which are exact in any order), and
// Q4_K runs the eight sub-block searches of a super-block in the eight lanes of an AVX2
// vector (two super-blocks in the sixteen lanes of AVX-512), each lane doing exactly the
// scalar sequence. Contraction into FMA is switched off below so no
// compiler fuses a multiply and an add that ggml's reference keeps apart.

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "quant.h"
#include "half.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#define QMAX(a, b) ((a) > (b) ? (a) : (b))
#define QMIN(a, b) ((a) < (b) ? (a) : (b))

const float quant_nf4_codes[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

struct qtype_info {
    int type;
    const char *name;
    int values;   // per block
    size_t bytes; // per block
};

static const struct qtype_info qtypes[] = {
    {QTYPE_F32, "F32", 1, 4},
    {QTYPE_F16, "F16", 1, 2},
    {QTYPE_BF16, "BF16", 1, 2},
    {QTYPE_Q8_0, "Q8_0", QUANT_QK8_0, 34},
    {QTYPE_Q4_0, "Q4_0", QUANT_QK4_0, 18},
    {QTYPE_Q4_K, "Q4_K", QUANT_QK_K, 144},
    {QTYPE_Q6_K, "Q6_K", QUANT_QK_K, 210},
    {QTYPE_NF4, "NF4", QUANT_QKNF4, 36},
};

static const struct qtype_info *
qtype_find(int type)
{
    for (size_t i = 0; i < sizeof(qtypes) / sizeof(qtypes[0]); i++)
        if (qtypes[i].type == type)
            return &qtypes[i];
    return NULL;
}

bool
quant_type_known(int type)
{
    return qtype_find(type) != NULL;
}

const char *
quant_type_name(int type)
{
    const struct qtype_info *q = qtype_find(type);
    return q ? q->name : "?";
}

int
quant_type_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(qtypes) / sizeof(qtypes[0]); i++)
        if (strcasecmp(qtypes[i].name, name) == 0)
            return qtypes[i].type;
    return -1;
}

int
quant_block_values(int type)
{
    const struct qtype_info *q = qtype_find(type);
    return q ? q->values : 0;
}

size_t
quant_block_bytes(int type)
{
    const struct qtype_info *q = qtype_find(type);
    return q ? q->bytes : 0;
}

size_t
quant_row_size(int type, int64_t n)
{
    const struct qtype_info *q = qtype_find(type);
    if (!q || n < 0 || n % q->values)
        return 0;
    return (size_t)(n / q->values) * q->bytes;
}

// ---- helpers shared with ggml's reference ----

// ggml's nearest_int: round to nearest (ties to even) through the float adder, valid for
// |f| <= 2^22; outside that range the same bits come out as in ggml.
static inline int
nearest_int(float f)
{
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// A float-to-integer conversion as x86 does it: truncation, 0x80000000 when out of range or
// NaN. Returns the low byte as C's (int8_t) cast of the result.
static inline int8_t
trunc_i8(float v)
{
    if (!(v > -2147483648.f && v < 2147483648.f))
        return 0;
    return (int8_t)(uint8_t)(uint32_t)(int32_t)v;
}

static inline void
put_f16(uint8_t *p, float v)
{
    uint16_t h = f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static inline float
get_f16(const uint8_t *p)
{
    return f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

// ---- Q8_0 ----

static void
q8_0_block_scalar(const float *x, uint8_t *y)
{
    float amax = 0.0f;
    for (int j = 0; j < QUANT_QK8_0; j++)
        amax = QMAX(amax, fabsf(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    for (int j = 0; j < QUANT_QK8_0; j++)
        y[2 + j] = (uint8_t)trunc_i8(roundf(x[j] * id));
}

#if defined(__AVX2__)
// roundf (half away from zero) of 8 lanes, exactly: trunc, then add the sign where the
// fraction (exact) is at least one half.
static inline __m256
round_away_ps(__m256 v)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    __m256 adj = _mm256_and_ps(_mm256_cmp_ps(f, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one);
    return _mm256_add_ps(t, adj);
}

static void
q8_0_block_avx2(const float *x, uint8_t *y)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i lowbyte = _mm256_set1_epi32(0xff);
    __m256i q[4];
    for (int k = 0; k < 4; k++)
        q[k] =
            _mm256_and_si256(_mm256_cvttps_epi32(round_away_ps(_mm256_mul_ps(v[k], vid))), lowbyte);
    __m256i a = _mm256_packus_epi32(q[0], q[1]);
    __m256i b = _mm256_packus_epi32(q[2], q[3]);
    __m256i c = _mm256_packus_epi16(a, b);
    c = _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(y + 2), c);
}
#endif

static void
q8_0_dequant(const uint8_t *b, float *y)
{
    const float d = get_f16(b);
    for (int j = 0; j < QUANT_QK8_0; j++)
        y[j] = (int8_t)b[2 + j] * d;
}

// ---- Q4_0 ----

static void
q4_0_block(const float *x, uint8_t *y)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QUANT_QK4_0; j++) {
        const float v = x[j];
        if (amax < fabsf(v)) {
            amax = fabsf(v);
            max = v;
        }
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    put_f16(y, d);
    for (int j = 0; j < QUANT_QK4_0 / 2; j++) {
        const float x0 = x[j] * id;
        const float x1 = x[QUANT_QK4_0 / 2 + j] * id;
        const uint8_t xi0 = (uint8_t)QMIN(15, trunc_i8(x0 + 8.5f));
        const uint8_t xi1 = (uint8_t)QMIN(15, trunc_i8(x1 + 8.5f));
        y[2 + j] = (uint8_t)(xi0 | xi1 << 4);
    }
}

static void
q4_0_dequant(const uint8_t *b, float *y)
{
    const float d = get_f16(b);
    for (int j = 0; j < QUANT_QK4_0 / 2; j++) {
        const int x0 = (b[2 + j] & 0x0f) - 8;
        const int x1 = (b[2 + j] >> 4) - 8;
        y[j] = x0 * d;
        y[j + QUANT_QK4_0 / 2] = x1 * d;
    }
}

// ---- Q4_K ----

// ggml's make_qkx2_quants for n = 32, nmax = 15, rmin = -1, rdelta = 0.1, nstep = 20, squared
// error: the scale and (negated) min of one sub-block and its levels L.
static float
q4k_sub_search(const float *x, const float *weights, uint8_t *L, float *the_min)
{
    enum { N = 32, NMAX = 15, NSTEP = 20 };
    const float rmin = -1.f, rdelta = 0.1f;
    uint8_t Laux[N];
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < N; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, N);
        *the_min = -min;
        return 0.f;
    }
    float iscale = NMAX / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < N; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)QMAX(0, QMIN(NMAX, l));
        float diff = scale * L[i] + min - x[i];
        diff = diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= NSTEP; is++) {
        iscale = (rmin + rdelta * is + NMAX) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < N; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = QMAX(0, QMIN(NMAX, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < N; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, N);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

static void
q4k_scales_scalar(const float *x, uint8_t *L, float *scales, float *mins)
{
    float weights[32];
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = q4k_sub_search(x + 32 * j, weights, L + 32 * j, &mins[j]);
    }
}

#if defined(__AVX2__)
static inline __m256i
nearest_int_avx2(__m256 f)
{
    __m256i i = _mm256_castps_si256(_mm256_add_ps(f, _mm256_set1_ps(12582912.f)));
    return _mm256_sub_epi32(_mm256_and_si256(i, _mm256_set1_epi32(0x007fffff)),
                            _mm256_set1_epi32(0x00400000));
}

// q4k_scales_scalar with the 8 sub-blocks in the 8 lanes; lane j repeats the scalar
// operations of sub-block j in the same order.
static void
q4k_scales_avx2(const float *x, uint8_t *L, float *scales, float *mins)
{
    enum { N = 32, NMAX = 15, NSTEP = 20 };
    const float rmin = -1.f, rdelta = 0.1f;
    __m256 xt[N], wt[N], Lf[N], Lauxf[N];
    __m256i Li[N], Laux[N];
    const __m256i vidx = _mm256_setr_epi32(0, 32, 64, 96, 128, 160, 192, 224);
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    const __m256i izero = _mm256_setzero_si256(), inmax = _mm256_set1_epi32(NMAX);

    __m256 sum_x2 = zero;
    for (int i = 0; i < N; i++) {
        xt[i] = _mm256_i32gather_ps(x + i, vidx, 4);
        sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(xt[i], xt[i]));
    }
    __m256 av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32)));
    for (int i = 0; i < N; i++)
        wt[i] = _mm256_add_ps(av_x, _mm256_andnot_ps(sign, xt[i]));

    __m256 min = xt[0], max = xt[0], sum_w = wt[0];
    __m256 sum_x = _mm256_mul_ps(sum_w, xt[0]);
    for (int i = 1; i < N; i++) {
        min = _mm256_min_ps(xt[i], min); // x < min ? x : min
        max = _mm256_max_ps(xt[i], max); // x > max ? x : max
        sum_w = _mm256_add_ps(sum_w, wt[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(wt[i], xt[i]));
    }
    min = _mm256_blendv_ps(min, zero, _mm256_cmp_ps(min, zero, _CMP_GT_OQ));
    const __m256 flat = _mm256_cmp_ps(max, min, _CMP_EQ_OQ);

    __m256 iscale = _mm256_div_ps(_mm256_set1_ps(NMAX), _mm256_sub_ps(max, min));
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1), iscale);
    __m256 best_error = zero;
    for (int i = 0; i < N; i++) {
        __m256i l = nearest_int_avx2(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min)));
        Li[i] = _mm256_max_epi32(izero, _mm256_min_epi32(inmax, l));
        Lf[i] = _mm256_cvtepi32_ps(Li[i]);
        __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, Lf[i]), min), xt[i]);
        diff = _mm256_mul_ps(diff, diff);
        best_error = _mm256_add_ps(best_error, _mm256_mul_ps(wt[i], diff));
    }
    for (int is = 0; is <= NSTEP; is++) {
        iscale = _mm256_div_ps(_mm256_set1_ps(rmin + rdelta * is + NMAX), _mm256_sub_ps(max, min));
        __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < N; i++) {
            __m256i l = nearest_int_avx2(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min)));
            Laux[i] = _mm256_max_epi32(izero, _mm256_min_epi32(inmax, l));
            Lauxf[i] = _mm256_cvtepi32_ps(Laux[i]);
            __m256 wl = _mm256_mul_ps(wt[i], Lauxf[i]);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, Lauxf[i]));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, xt[i]));
        }
        __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        __m256 dpos = _mm256_cmp_ps(D, zero, _CMP_GT_OQ);
        if (_mm256_movemask_ps(dpos) == 0)
            continue;
        __m256 this_scale = _mm256_div_ps(
            _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
        __m256 this_min = _mm256_div_ps(
            _mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
        __m256 mpos = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
        this_min = _mm256_blendv_ps(this_min, zero, mpos);
        this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), mpos);
        __m256 cur_error = zero;
        for (int i = 0; i < N; i++) {
            __m256 diff =
                _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, Lauxf[i]), this_min), xt[i]);
            diff = _mm256_mul_ps(diff, diff);
            cur_error = _mm256_add_ps(cur_error, _mm256_mul_ps(wt[i], diff));
        }
        __m256 better = _mm256_and_ps(dpos, _mm256_cmp_ps(cur_error, best_error, _CMP_LT_OQ));
        if (_mm256_movemask_ps(better) == 0)
            continue;
        __m256i ib = _mm256_castps_si256(better);
        for (int i = 0; i < N; i++)
            Li[i] = _mm256_blendv_epi8(Li[i], Laux[i], ib);
        best_error = _mm256_blendv_ps(best_error, cur_error, better);
        scale = _mm256_blendv_ps(scale, this_scale, better);
        min = _mm256_blendv_ps(min, this_min, better);
    }
    scale = _mm256_blendv_ps(scale, zero, flat);
    __m256i iflat = _mm256_castps_si256(flat);
    _mm256_storeu_ps(scales, scale);
    _mm256_storeu_ps(mins, _mm256_xor_ps(min, sign)); // -min
    int32_t tmp[8];
    for (int i = 0; i < N; i++) {
        _mm256_storeu_si256((__m256i *)tmp, _mm256_andnot_si256(iflat, Li[i]));
        for (int j = 0; j < 8; j++)
            L[32 * j + i] = (uint8_t)tmp[j];
    }
}
#endif

#if defined(__AVX512F__) && defined(__AVX512DQ__)
static inline __m512i
nearest_int_avx512(__m512 f)
{
    __m512i i = _mm512_castps_si512(_mm512_add_ps(f, _mm512_set1_ps(12582912.f)));
    return _mm512_sub_epi32(_mm512_and_si512(i, _mm512_set1_epi32(0x007fffff)),
                            _mm512_set1_epi32(0x00400000));
}

// The AVX-512 twin of q4k_scales_avx512: two super-blocks (16 sub-blocks) in the 16 lanes, so
// x, L, scales and mins cover 512 values; lane j repeats the scalar operations of sub-block j.
static void
q4k_scales_avx512(const float *x, uint8_t *L, float *scales, float *mins)
{
    enum { N = 32, NMAX = 15, NSTEP = 20 };
    const float rmin = -1.f, rdelta = 0.1f;
    __m512 xt[N], wt[N], Lf[N], Lauxf[N];
    __m512i Li[N], Laux[N];
    const __m512i vidx = _mm512_setr_epi32(0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352,
                                           384, 416, 448, 480);
    const __m512 sign = _mm512_set1_ps(-0.0f), zero = _mm512_setzero_ps();
    const __m512i izero = _mm512_setzero_si512(), inmax = _mm512_set1_epi32(NMAX);

    __m512 sum_x2 = zero;
    for (int i = 0; i < N; i++) {
        xt[i] = _mm512_i32gather_ps(vidx, x + i, 4);
        sum_x2 = _mm512_add_ps(sum_x2, _mm512_mul_ps(xt[i], xt[i]));
    }
    __m512 av_x = _mm512_sqrt_ps(_mm512_div_ps(sum_x2, _mm512_set1_ps(32)));
    for (int i = 0; i < N; i++)
        wt[i] = _mm512_add_ps(av_x, _mm512_andnot_ps(sign, xt[i]));

    __m512 min = xt[0], max = xt[0], sum_w = wt[0];
    __m512 sum_x = _mm512_mul_ps(sum_w, xt[0]);
    for (int i = 1; i < N; i++) {
        min = _mm512_min_ps(xt[i], min); // x < min ? x : min
        max = _mm512_max_ps(xt[i], max); // x > max ? x : max
        sum_w = _mm512_add_ps(sum_w, wt[i]);
        sum_x = _mm512_add_ps(sum_x, _mm512_mul_ps(wt[i], xt[i]));
    }
    min = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(min, zero, _CMP_GT_OQ), min, zero);
    const __mmask16 flat = _mm512_cmp_ps_mask(max, min, _CMP_EQ_OQ);

    __m512 iscale = _mm512_div_ps(_mm512_set1_ps(NMAX), _mm512_sub_ps(max, min));
    __m512 scale = _mm512_div_ps(_mm512_set1_ps(1), iscale);
    __m512 best_error = zero;
    for (int i = 0; i < N; i++) {
        __m512i l = nearest_int_avx512(_mm512_mul_ps(iscale, _mm512_sub_ps(xt[i], min)));
        Li[i] = _mm512_max_epi32(izero, _mm512_min_epi32(inmax, l));
        Lf[i] = _mm512_cvtepi32_ps(Li[i]);
        __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(scale, Lf[i]), min), xt[i]);
        diff = _mm512_mul_ps(diff, diff);
        best_error = _mm512_add_ps(best_error, _mm512_mul_ps(wt[i], diff));
    }
    for (int is = 0; is <= NSTEP; is++) {
        iscale = _mm512_div_ps(_mm512_set1_ps(rmin + rdelta * is + NMAX), _mm512_sub_ps(max, min));
        __m512 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < N; i++) {
            __m512i l = nearest_int_avx512(_mm512_mul_ps(iscale, _mm512_sub_ps(xt[i], min)));
            Laux[i] = _mm512_max_epi32(izero, _mm512_min_epi32(inmax, l));
            Lauxf[i] = _mm512_cvtepi32_ps(Laux[i]);
            __m512 wl = _mm512_mul_ps(wt[i], Lauxf[i]);
            sum_l = _mm512_add_ps(sum_l, wl);
            sum_l2 = _mm512_add_ps(sum_l2, _mm512_mul_ps(wl, Lauxf[i]));
            sum_xl = _mm512_add_ps(sum_xl, _mm512_mul_ps(wl, xt[i]));
        }
        __m512 D = _mm512_sub_ps(_mm512_mul_ps(sum_w, sum_l2), _mm512_mul_ps(sum_l, sum_l));
        __mmask16 dpos = _mm512_cmp_ps_mask(D, zero, _CMP_GT_OQ);
        if (dpos == 0)
            continue;
        __m512 this_scale = _mm512_div_ps(
            _mm512_sub_ps(_mm512_mul_ps(sum_w, sum_xl), _mm512_mul_ps(sum_x, sum_l)), D);
        __m512 this_min = _mm512_div_ps(
            _mm512_sub_ps(_mm512_mul_ps(sum_l2, sum_x), _mm512_mul_ps(sum_l, sum_xl)), D);
        __mmask16 mpos = _mm512_cmp_ps_mask(this_min, zero, _CMP_GT_OQ);
        this_min = _mm512_mask_blend_ps(mpos, this_min, zero);
        this_scale = _mm512_mask_blend_ps(mpos, this_scale, _mm512_div_ps(sum_xl, sum_l2));
        __m512 cur_error = zero;
        for (int i = 0; i < N; i++) {
            __m512 diff =
                _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(this_scale, Lauxf[i]), this_min), xt[i]);
            diff = _mm512_mul_ps(diff, diff);
            cur_error = _mm512_add_ps(cur_error, _mm512_mul_ps(wt[i], diff));
        }
        __mmask16 better = dpos & _mm512_cmp_ps_mask(cur_error, best_error, _CMP_LT_OQ);
        if (better == 0)
            continue;
        for (int i = 0; i < N; i++)
            Li[i] = _mm512_mask_blend_epi32(better, Li[i], Laux[i]);
        best_error = _mm512_mask_blend_ps(better, best_error, cur_error);
        scale = _mm512_mask_blend_ps(better, scale, this_scale);
        min = _mm512_mask_blend_ps(better, min, this_min);
    }
    scale = _mm512_mask_blend_ps(flat, scale, zero);
    _mm512_storeu_ps(scales, scale);
    _mm512_storeu_ps(mins, _mm512_xor_ps(min, sign)); // -min
    int32_t tmp[16];
    for (int i = 0; i < N; i++) {
        _mm512_storeu_si512(tmp, _mm512_maskz_mov_epi32((__mmask16)~flat, Li[i]));
        for (int j = 0; j < 16; j++)
            L[32 * j + i] = (uint8_t)tmp[j];
    }
}
#endif

static inline void
get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

// One super-block: 256 values of x into 144 bytes at y, given the sub-block search results
// (levels L, scales, mins) of q4k_scales_*.
static void
q4k_block_finish(const float *x, uint8_t *y, uint8_t *L, const float *scales, const float *mins)
{
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    uint8_t *sc = y + 4;
    memset(sc, 0, 12);
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = QMIN(63, ls);
        lm = QMIN(63, lm);
        if (j < 4) {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    put_f16(y, max_scale / 63.f);
    put_f16(y + 2, max_min / 63.f);
    const float dd = get_f16(y), dmin = get_f16(y + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        get_scale_min_k4(j, sc, &s, &m);
        const float d = dd * s;
        if (!d)
            continue;
        const float dm = dmin * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)QMAX(0, QMIN(15, l));
        }
    }
    uint8_t *q = y + 16;
    for (int j = 0; j < QUANT_QK_K; j += 64) {
        for (int l = 0; l < 32; l++)
            q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

static void
q4k_dequant(const uint8_t *b, float *y)
{
    const float d = get_f16(b), min = get_f16(b + 2);
    const uint8_t *sc = b + 4, *q = b + 16;
    int is = 0;
    for (int j = 0; j < QUANT_QK_K; j += 64) {
        uint8_t s, m;
        get_scale_min_k4(is + 0, sc, &s, &m);
        const float d1 = d * s, m1 = min * m;
        get_scale_min_k4(is + 1, sc, &s, &m);
        const float d2 = d * s, m2 = min * m;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (q[l] >> 4) - m2;
        q += 32;
        is += 2;
    }
}

// ---- Q6_K ----

// ggml's make_qx_quants for rmse_type 1 without importance weights (w = x^2): the signed
// scale of n values at nmax levels each side, levels + nmax into L.
static float
q6k_sub_search(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < 1e-15f) { // GROUP_MAX_EPS
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = QMAX(-nmax, QMIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = QMAX(-nmax, QMIN(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + QMAX(-nmax, QMIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// One super-block: 256 values of x into 210 bytes at y (ggml's quantize_row_q6_K_ref).
static void
q6k_block(const float *x, uint8_t *y)
{
    int8_t L[QUANT_QK_K];
    float scales[QUANT_QK_K / 16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QUANT_QK_K / 16; ib++) {
        const float scale = q6k_sub_search(16, 32, x + 16 * ib, L + 16 * ib);
        scales[ib] = scale;
        const float abs_scale = fabsf(scale);
        if (abs_scale > max_abs_scale) {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    uint8_t *ql = y, *qh = y + 128;
    int8_t *sc = (int8_t *)(y + 192);
    if (max_abs_scale < 1e-15f) {
        memset(y, 0, 210);
        return;
    }
    float iscale = -128.f / max_scale;
    put_f16(y + 208, 1 / iscale);
    for (int ib = 0; ib < QUANT_QK_K / 16; ib++)
        sc[ib] = (int8_t)QMIN(127, nearest_int(iscale * scales[ib]));
    const float dd = get_f16(y + 208);
    for (int j = 0; j < QUANT_QK_K / 16; j++) {
        float d = dd * sc[j];
        if (!d)
            continue;
        for (int ii = 0; ii < 16; ii++) {
            int l = nearest_int(x[16 * j + ii] / d);
            l = QMAX(-32, QMIN(31, l));
            L[16 * j + ii] = (int8_t)(l + 32);
        }
    }
    for (int j = 0; j < QUANT_QK_K; j += 128) {
        for (int l = 0; l < 32; l++) {
            const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
            const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
            ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
            ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
            qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                              ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}

static void
q6k_dequant(const uint8_t *b, float *y)
{
    const float d = get_f16(b + 208);
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int n = 0; n < QUANT_QK_K; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l + 0] = d * sc[is + 0] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

// ---- NF4 ----

static void
nf4_block(const float *x, uint8_t *y)
{
    float amax = 0.0f;
    for (int j = 0; j < QUANT_QKNF4; j++)
        amax = QMAX(amax, fabsf(x[j]));
    memcpy(y, &amax, 4);
    const float id = amax ? 1.0f / amax : 0.0f;
    uint8_t q[QUANT_QKNF4];
    for (int j = 0; j < QUANT_QKNF4; j++) {
        const float v = x[j] * id;
        int k = 0; // the number of midpoints below v: nearest code, ties to the lower one
        for (int c = 0; c < 15; c++)
            k += v > 0.5f * (quant_nf4_codes[c] + quant_nf4_codes[c + 1]);
        q[j] = (uint8_t)k;
    }
    for (int j = 0; j < QUANT_QKNF4 / 2; j++)
        y[4 + j] = (uint8_t)(q[2 * j] << 4 | q[2 * j + 1]);
}

static void
nf4_dequant(const uint8_t *b, float *y)
{
    float amax;
    memcpy(&amax, b, 4);
    for (int j = 0; j < QUANT_QKNF4 / 2; j++) {
        y[2 * j] = quant_nf4_codes[b[4 + j] >> 4] * amax;
        y[2 * j + 1] = quant_nf4_codes[b[4 + j] & 0xF] * amax;
    }
}

// ---- row API ----

static int
row_quantize(int type, const float *x, void *dst, int64_t n, bool vector)
{
    if (!quant_row_size(type, n) && n != 0)
        return -1;
    uint8_t *y = dst;
    switch (type) {
    case QTYPE_F32:
        memcpy(dst, x, (size_t)n * 4);
        return 0;
    case QTYPE_F16:
    case QTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = type == QTYPE_F16 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
            y[2 * i] = (uint8_t)h;
            y[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return 0;
    case QTYPE_Q8_0:
        for (int64_t i = 0; i < n / QUANT_QK8_0; i++) {
#if defined(__AVX2__)
            if (vector) {
                q8_0_block_avx2(x + i * QUANT_QK8_0, y + i * 34);
                continue;
            }
#endif
            q8_0_block_scalar(x + i * QUANT_QK8_0, y + i * 34);
        }
        return 0;
    case QTYPE_Q4_0:
        for (int64_t i = 0; i < n / QUANT_QK4_0; i++)
            q4_0_block(x + i * QUANT_QK4_0, y + i * 18);
        return 0;
    case QTYPE_Q4_K:
        for (int64_t i = 0; i < n / QUANT_QK_K;) {
            uint8_t L[2 * QUANT_QK_K];
            float mins[16], scales[16];
            const float *xb = x + i * QUANT_QK_K;
            int nb = 1;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
            if (vector && i + 1 < n / QUANT_QK_K) {
                q4k_scales_avx512(xb, L, scales, mins);
                nb = 2;
            } else
#endif
#if defined(__AVX2__)
                if (vector)
                q4k_scales_avx2(xb, L, scales, mins);
            else
#endif
                q4k_scales_scalar(xb, L, scales, mins);
            for (int k = 0; k < nb; k++)
                q4k_block_finish(xb + k * QUANT_QK_K, y + (i + k) * 144, L + k * QUANT_QK_K,
                                 scales + 8 * k, mins + 8 * k);
            i += nb;
        }
        return 0;
    case QTYPE_Q6_K:
        for (int64_t i = 0; i < n / QUANT_QK_K; i++)
            q6k_block(x + i * QUANT_QK_K, y + i * 210);
        return 0;
    case QTYPE_NF4:
        for (int64_t i = 0; i < n / QUANT_QKNF4; i++)
            nf4_block(x + i * QUANT_QKNF4, y + i * 36);
        return 0;
    }
    return -1;
}

int
quant_row_quantize(int type, const float *x, void *dst, int64_t n)
{
    return row_quantize(type, x, dst, n, true);
}

int
quant_row_quantize_scalar(int type, const float *x, void *dst, int64_t n)
{
    return row_quantize(type, x, dst, n, false);
}

int
quant_row_dequantize(int type, const void *src, float *y, int64_t n)
{
    if (!quant_row_size(type, n) && n != 0)
        return -1;
    const uint8_t *b = src;
    switch (type) {
    case QTYPE_F32:
        memcpy(y, src, (size_t)n * 4);
        return 0;
    case QTYPE_F16:
        for (int64_t i = 0; i < n; i++)
            y[i] = f16_to_f32((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
        return 0;
    case QTYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            y[i] = bf16_to_f32((uint16_t)(b[2 * i] | b[2 * i + 1] << 8));
        return 0;
    case QTYPE_Q8_0:
        for (int64_t i = 0; i < n / QUANT_QK8_0; i++)
            q8_0_dequant(b + i * 34, y + i * QUANT_QK8_0);
        return 0;
    case QTYPE_Q4_0:
        for (int64_t i = 0; i < n / QUANT_QK4_0; i++)
            q4_0_dequant(b + i * 18, y + i * QUANT_QK4_0);
        return 0;
    case QTYPE_Q4_K:
        for (int64_t i = 0; i < n / QUANT_QK_K; i++)
            q4k_dequant(b + i * 144, y + i * QUANT_QK_K);
        return 0;
    case QTYPE_Q6_K:
        for (int64_t i = 0; i < n / QUANT_QK_K; i++)
            q6k_dequant(b + i * 210, y + i * QUANT_QK_K);
        return 0;
    case QTYPE_NF4:
        for (int64_t i = 0; i < n / QUANT_QKNF4; i++)
            nf4_dequant(b + i * 36, y + i * QUANT_QKNF4);
        return 0;
    }
    return -1;
}

float
quant_row_dot(int type, const void *row, const float *x, int64_t n)
{
    const struct qtype_info *q = qtype_find(type);
    if (!q || n < 0 || n % q->values)
        return NAN;
    // Dequantize one chunk of whole blocks at a time (256 values, a multiple of every block).
    float tmp[QUANT_QK_K];
    const int chunk = q->values == 1 ? QUANT_QK_K : q->values;
    const uint8_t *b = row;
    double sum = 0;
    for (int64_t i = 0; i < n; i += chunk) {
        int64_t m = n - i < chunk ? n - i : chunk;
        quant_row_dequantize(type, b + (size_t)(i / q->values) * q->bytes, tmp, m);
        float s = 0;
        for (int64_t j = 0; j < m; j++)
            s += tmp[j] * x[i + j];
        sum += s;
    }
    return (float)sum;
}
