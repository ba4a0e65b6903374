// SPDX-License-Identifier: MIT
// nearpairs: a deterministic near-duplicate fixture for dedupe, and its checker.
//
//   nearpairs gen [--pairs N] [--seed S] [--min J] [--max J]   fixture on stdout
//   nearpairs check --threshold T FIXTURE REJECTS               exit 0 when dedupe did right
//
// gen writes N base documents ("pK-a": 120–360 words of English-looking prose from a Zipf-
// weighted vocabulary, with sentences, capitals and punctuation) and then, in reverse order,
// one edited copy of each ("pK-b") whose word 5-gram Jaccard similarity to its base is drawn
// uniformly from [min, max) (default 0.5–1.0). Edits are word substitutions, insertions and
// deletions at random places, applied one at a time until the similarity falls to the target;
// the similarity actually reached is stored in the copy's "jaccard" field. It is computed here
// independently of kiln's minhash module: shingles are the space-joined strings of 5
// consecutive lowercased ASCII words (runs of letters and digits), compared as sorted sets.
//
// check reads the fixture and dedupe's --rejects output (plain JSON Lines) and verifies:
// every removed record is a copy whose true similarity is ≥ T and whose reported similarity
// equals it (±1e-6); at least 95% of copies with similarity ≥ T + 0.05 were removed. It
// prints one summary line.
#include "json.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_s;

static uint64_t
rng(void)
{
    uint64_t z = (rng_s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double
unif(void)
{
    return (double)(rng() >> 11) / 9007199254740992.0;
}

static const char *const VOCAB[] = {
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
    "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has",
    "there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "she", "other",
    "its", "may", "these", "about", "them", "than", "some", "time", "could", "into", "only",
    "then", "new", "like", "most", "after", "also", "made", "many", "before", "must", "through",
    "years", "where", "much", "your", "way", "well", "down", "should", "because", "each", "just",
    "those", "people", "how", "too", "little", "state", "good", "very", "make", "world",
    "still", "own", "see", "men", "work", "long", "get", "here", "between", "both", "life",
    "being", "under", "never", "day", "same", "another", "know", "while", "last", "might",
    "great", "old", "year", "off", "come", "since", "against", "go", "came", "right", "used",
    "take", "three", "office", "meeting", "server", "message", "account", "price", "offer",
    "report", "project", "weekend", "market", "software", "network", "customer", "budget",
    "schedule", "download", "update", "security", "password", "invoice", "delivery", "service",
    "support", "question", "answer", "review", "version", "release", "feature", "problem",
    "solution", "system", "file", "folder", "window", "mail", "list", "group", "friend",
    "family", "garden", "kitchen", "travel", "ticket", "hotel", "flight", "weather", "morning",
    "evening", "coffee", "lunch", "dinner", "music", "movie", "book", "paper", "letter",
    "phone", "number", "address", "street", "city", "country", "company", "manager", "team",
    "player", "game", "season", "result", "money", "bank", "credit", "loan", "rate", "free",
    "click", "today", "limited", "special", "discount", "order", "shipping", "quality",
    "product", "health", "doctor", "water", "energy", "science", "history", "school",
    "student", "teacher", "lesson", "library", "computer", "keyboard", "screen", "printer",
    "kernel", "patch", "build", "compile", "error", "warning", "debug", "memory", "disk",
    "backup", "restore", "install", "configure", "option", "default", "request", "response",
    "quickly", "slowly", "carefully", "really", "almost", "always", "often", "sometimes",
    "green", "blue", "red", "large", "small", "early", "late", "happy", "strange", "simple",
    "clear", "ready", "busy", "open", "closed", "public", "private", "local", "remote",
};
#define NV (sizeof VOCAB / sizeof VOCAB[0])

// Zipf-like: index ⌊NV · u^2.2⌋ favours the common words at the start of the list.
static int
word_pick(void)
{
    int i = (int)(NV * pow(unif(), 2.2));
    return i < (int)NV ? i : (int)NV - 1;
}

// ---- independent word 5-gram Jaccard -----------------------------------------------------

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Sorted distinct 5-gram strings of text (lowercased ASCII alnum words). Caller frees.
static char **
shingles(const char *text, size_t *n_out)
{
    size_t cap = 64, nw = 0;
    char **w = xmalloc(cap * sizeof *w);
    const char *p = text;
    while (*p) {
        while (*p && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                       (*p >= '0' && *p <= '9')))
            p++;
        const char *s = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
            p++;
        if (p > s) {
            if (nw == cap)
                w = xrealloc(w, (cap *= 2) * sizeof *w);
            char *x = xstrndup(s, (size_t)(p - s));
            for (char *c = x; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c += 32;
            w[nw++] = x;
        }
    }
    size_t ns = nw >= 5 ? nw - 4 : 0;
    char **sh = xmalloc((ns + 1) * sizeof *sh);
    for (size_t i = 0; i < ns; i++) {
        struct buf b = {0};
        for (size_t k = 0; k < 5; k++) {
            if (k)
                buf_putc(&b, ' ');
            buf_puts(&b, w[i + k]);
        }
        sh[i] = buf_detach(&b);
    }
    for (size_t i = 0; i < nw; i++)
        free(w[i]);
    free(w);
    qsort(sh, ns, sizeof *sh, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < ns; i++) {
        if (k && strcmp(sh[i], sh[k - 1]) == 0)
            free(sh[i]);
        else
            sh[k++] = sh[i];
    }
    *n_out = k;
    return sh;
}

static void
free_shingles(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

static double
jaccard(char **a, size_t na, char **b, size_t nb)
{
    size_t i = 0, j = 0, common = 0;
    while (i < na && j < nb) {
        int c = strcmp(a[i], b[j]);
        if (c < 0)
            i++;
        else if (c > 0)
            j++;
        else
            common++, i++, j++;
    }
    return na + nb ? (double)common / (double)(na + nb - common) : 0;
}

// ---- generation ---------------------------------------------------------------------------

// A document as a sequence of vocabulary indexes; rendering adds sentence structure that
// depends only on the position, so edits change words, not punctuation patterns.
static void
render(const int *w, size_t n, struct buf *out)
{
    buf_reset(out);
    for (size_t i = 0; i < n; i++) {
        bool start = i == 0 || i % 11 == 0;
        if (i)
            buf_puts(out, i % 11 == 0 ? ". " : (i % 7 == 3 ? ", " : " "));
        if (i && i % 44 == 0)
            buf_puts(out, "\n\n");
        const char *v = VOCAB[w[i]];
        buf_putc(out, start ? (char)(v[0] - 32) : v[0]);
        buf_puts(out, v + 1);
    }
    buf_puts(out, ".");
}

static void
emit(const char *id, size_t pair, const char *role, const char *text, double j)
{
    struct buf b = {0};
    struct json_writer w;
    json_writer_init(&w, &b);
    jw_obj_begin(&w);
    jw_key(&w, "id");
    jw_str(&w, id);
    jw_key(&w, "text");
    jw_str(&w, text);
    jw_key(&w, "pair");
    jw_uint(&w, pair);
    jw_key(&w, "role");
    jw_str(&w, role);
    if (j >= 0) {
        jw_key(&w, "jaccard");
        jw_double(&w, round(j * 1e6) / 1e6);
    }
    jw_obj_end(&w);
    puts(b.p);
    buf_free(&b);
}

static int
gen(size_t pairs, double jmin, double jmax)
{
    int **base = xmalloc(pairs * sizeof *base);
    size_t *len = xmalloc(pairs * sizeof *len);
    struct buf text = {0};
    char id[64];
    for (size_t p = 0; p < pairs; p++) {
        len[p] = 120 + (size_t)(rng() % 241);
        base[p] = xmalloc(len[p] * sizeof **base);
        for (size_t i = 0; i < len[p]; i++)
            base[p][i] = word_pick();
        render(base[p], len[p], &text);
        snprintf(id, sizeof id, "p%zu-a", p);
        emit(id, p, "a", text.p, -1);
    }
    for (size_t q = pairs; q-- > 0;) {
        double target = jmin + (jmax - jmin) * unif();
        render(base[q], len[q], &text);
        size_t na, nb;
        char **sa = shingles(text.p, &na);
        size_t n = len[q], cap = len[q] * 2 + 16;
        int *w = xmalloc(cap * sizeof *w);
        memcpy(w, base[q], n * sizeof *w);
        double j = 1;
        for (;;) {
            // One edit: substitute (60%), insert (20%) or delete (20%) a word.
            int *save = xmalloc(cap * sizeof *save);
            size_t save_n = n;
            memcpy(save, w, n * sizeof *w);
            double u = unif();
            size_t at = (size_t)(rng() % n);
            if (u < 0.6 || n < 20 || n + 1 >= cap) {
                w[at] = word_pick();
            } else if (u < 0.8) {
                memmove(w + at + 1, w + at, (n - at) * sizeof *w);
                w[at] = word_pick();
                n++;
            } else {
                memmove(w + at, w + at + 1, (n - at - 1) * sizeof *w);
                n--;
            }
            render(w, n, &text);
            char **sb = shingles(text.p, &nb);
            double jn = jaccard(sa, na, sb, nb);
            free_shingles(sb, nb);
            if (jn < target) {
                // Overshot: keep the previous state when it is closer to the target.
                if (target - jn > j - target) {
                    memcpy(w, save, save_n * sizeof *w);
                    n = save_n;
                } else {
                    j = jn;
                }
                free(save);
                break;
            }
            j = jn;
            free(save);
        }
        render(w, n, &text);
        snprintf(id, sizeof id, "p%zu-b", q);
        emit(id, q, "b", text.p, j);
        free_shingles(sa, na);
        free(w);
    }
    for (size_t p = 0; p < pairs; p++)
        free(base[p]);
    free(base);
    free(len);
    buf_free(&text);
    return 0;
}

// ---- check --------------------------------------------------------------------------------

static int
read_lines(const char *path, struct buf *all)
{
    struct kerr err;
    if (read_file(path, 0, all, &err) != 0) {
        fprintf(stderr, "nearpairs: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static bool
get_str(const struct json_obj *o, const char *key, struct buf *out)
{
    struct json_val v;
    buf_reset(out);
    if (!json_obj_path(o, key, &v) || v.type != JSON_STRING)
        return false;
    json_str(&v, out);
    return true;
}

static int
check(double t, const char *fixture, const char *rejects)
{
    struct buf fx = {0}, rj = {0}, s = {0};
    if (read_lines(fixture, &fx) != 0 || read_lines(rejects, &rj) != 0)
        return 2;
    // Pair similarity by pair number (copies only); removed flags.
    size_t cap = 0, n = 0;
    double *jac = NULL;
    bool *removed = NULL;
    struct json_obj o;
    json_obj_init(&o);
    for (char *line = fx.p, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (json_obj_parse(&o, line, len, NULL) != 0)
            return fprintf(stderr, "nearpairs: bad fixture line\n"), 2;
        struct json_val v;
        int64_t pair;
        if (!json_obj_path(&o, "pair", &v) || json_int(&v, &pair) != 0 || pair < 0)
            return fprintf(stderr, "nearpairs: fixture line without pair\n"), 2;
        if ((size_t)pair >= cap) {
            size_t nc = (size_t)pair * 2 + 16;
            jac = xrealloc(jac, nc * sizeof *jac);
            removed = xrealloc(removed, nc * sizeof *removed);
            for (size_t i = cap; i < nc; i++)
                jac[i] = -1, removed[i] = false;
            cap = nc;
        }
        if ((size_t)pair >= n)
            n = (size_t)pair + 1;
        if (json_obj_path(&o, "jaccard", &v))
            json_double(&v, &jac[pair]);
    }
    size_t below = 0, mismatch = 0, unexpected = 0, n_rej = 0;
    for (char *line = rj.p, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (json_obj_parse(&o, line, len, NULL) != 0)
            return fprintf(stderr, "nearpairs: bad rejects line\n"), 2;
        n_rej++;
        struct json_val v;
        int64_t pair;
        double sim = -1;
        if (!get_str(&o, "role", &s) || strcmp(s.p, "b") != 0 ||
            !json_obj_path(&o, "pair", &v) || json_int(&v, &pair) != 0 || (size_t)pair >= n) {
            unexpected++;
            continue;
        }
        if (json_obj_path(&o, "similarity", &v))
            json_double(&v, &sim);
        removed[pair] = true;
        if (jac[pair] < t)
            below++;
        if (fabs(sim - jac[pair]) > 1.5e-6)
            mismatch++;
    }
    size_t above = 0, found = 0;
    for (size_t p = 0; p < n; p++) {
        if (jac[p] >= t + 0.05) {
            above++;
            found += removed[p];
        }
    }
    double recall = above ? (double)found / (double)above : 1;
    printf("rejects %zu pairs_above %zu recall %.4f below_threshold_removed %zu "
           "similarity_mismatch %zu unexpected %zu\n",
           n_rej, above, recall, below, mismatch, unexpected);
    json_obj_free(&o);
    buf_free(&fx);
    buf_free(&rj);
    buf_free(&s);
    free(jac);
    free(removed);
    return recall >= 0.95 && below == 0 && mismatch == 0 && unexpected == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "gen") == 0) {
        size_t pairs = 200;
        double jmin = 0.5, jmax = 1.0;
        rng_s = 1;
        for (int i = 2; i + 1 < argc; i += 2) {
            if (strcmp(argv[i], "--pairs") == 0)
                pairs = strtoul(argv[i + 1], NULL, 10);
            else if (strcmp(argv[i], "--seed") == 0)
                rng_s = strtoull(argv[i + 1], NULL, 10);
            else if (strcmp(argv[i], "--min") == 0)
                jmin = strtod(argv[i + 1], NULL);
            else if (strcmp(argv[i], "--max") == 0)
                jmax = strtod(argv[i + 1], NULL);
            else
                return fprintf(stderr, "nearpairs: unknown option %s\n", argv[i]), 2;
        }
        return gen(pairs, jmin, jmax);
    }
    if (argc == 6 && strcmp(argv[1], "check") == 0 && strcmp(argv[2], "--threshold") == 0)
        return check(strtod(argv[3], NULL), argv[4], argv[5]);
    fprintf(stderr, "usage: nearpairs gen [--pairs N] [--seed S] [--min J] [--max J]\n"
                    "       nearpairs check --threshold T FIXTURE REJECTS\n");
    return 2;
}
