// SPDX-License-Identifier: MIT
// tok_gentext: deterministic English-like text for tokenizer tests and benchmarks.
//
//   tok_gentext BYTES [SEED] [--records]
//
// Writes about BYTES bytes of text to stdout: sentences of words drawn from a Zipf
// distribution over a 60,000-word lexicon (100 real function words, then words built from
// syllables), with capitalized sentence starts, commas, numbers, quotes, contractions and
// paragraphs. With --records, each paragraph is one JSON record {"id":"gN","text":"..."}.
// Same arguments, same bytes on every machine.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEX 60000

static const char *const common[] = {
    "the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on",
    "are", "with", "as", "I", "his", "they", "be", "at", "one", "have", "this", "from", "or",
    "had", "by", "not", "word", "but", "what", "some", "we", "can", "out", "other", "were",
    "all", "there", "when", "up", "use", "your", "how", "said", "an", "each", "she", "which",
    "do", "their", "time", "if", "will", "way", "about", "many", "then", "them", "write",
    "would", "like", "so", "these", "her", "long", "make", "thing", "see", "him", "two", "has",
    "look", "more", "day", "could", "go", "come", "did", "number", "sound", "no", "most",
    "people", "my", "over", "know", "water", "than", "call", "first", "who", "may", "down",
    "side", "been", "now", "find",
};
static const char *const syl[] = {
    "ka", "ter", "in", "ro", "ment", "al", "con", "di", "tion", "pre", "ex", "ble", "ly", "ing",
    "er", "un", "re", "de", "ma", "po", "li", "ver", "sa", "mo", "tri", "an", "ous", "ful",
    "est", "ic", "na", "to", "com", "per", "ta", "vi", "so", "gra", "phy", "lo", "gen", "sta",
};

static uint64_t rng;
static uint64_t
next(void)
{
    rng += 0x9E3779B97F4A7C15ull;
    uint64_t z = rng;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double
unif(void)
{
    return (double)(next() >> 11) / 9007199254740992.0;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: tok_gentext BYTES [SEED] [--records]\n");
        return 2;
    }
    long long want = atoll(argv[1]);
    rng = argc > 2 && argv[2][0] != '-' ? strtoull(argv[2], NULL, 10) : 1;
    int records = argc > 2 && strcmp(argv[argc - 1], "--records") == 0;
    static char words[LEX][24];
    static double cdf[LEX];
    uint64_t save = rng;
    rng = 12345;
    for (int i = 0; i < LEX; i++) {
        if (i < (int)(sizeof common / sizeof *common)) {
            strcpy(words[i], common[i]);
        } else {
            int ns = 1 + (int)(next() % 4);
            words[i][0] = 0;
            for (int k = 0; k < ns; k++)
                strcat(words[i], syl[next() % (sizeof syl / sizeof *syl)]);
        }
    }
    rng = save;
    double sum = 0;
    for (int i = 0; i < LEX; i++)
        cdf[i] = (sum += 1.0 / pow(i + 1, 1.05));
    long long out = 0, rec = 0;
    char para[1 << 16];
    while (out < want) {
        size_t n = 0;
        int sentences = 1 + (int)(next() % 8);
        for (int s = 0; s < sentences; s++) {
            int nw = 3 + (int)(next() % 20);
            for (int w = 0; w < nw; w++) {
                double u = unif() * sum;
                int lo = 0, hi = LEX - 1;
                while (lo < hi) {
                    int mid = (lo + hi) / 2;
                    if (cdf[mid] < u)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                char tmp[64];
                uint64_t r = next() % 100;
                if (r < 2)
                    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)(next() % 100000));
                else if (r < 3)
                    snprintf(tmp, sizeof tmp, "%s's", words[lo]);
                else if (r < 4)
                    snprintf(tmp, sizeof tmp, "\"%s\"", words[lo]);
                else
                    snprintf(tmp, sizeof tmp, "%s", words[lo]);
                if (w == 0 && tmp[0] >= 'a' && tmp[0] <= 'z')
                    tmp[0] -= 32;
                n += (size_t)snprintf(para + n, sizeof para - n, "%s%s", w ? " " : (s ? " " : ""),
                                      tmp);
                if (w + 1 < nw && next() % 10 == 0)
                    para[n++] = ',';
            }
            para[n++] = ".!?"[next() % 10 < 8 ? 0 : 1 + next() % 2];
        }
        para[n] = 0;
        if (records) {
            printf("{\"id\":\"g%lld\",\"text\":\"", rec++);
            for (size_t i = 0; i < n; i++) {
                if (para[i] == '"')
                    fputs("\\\"", stdout);
                else
                    putchar(para[i]);
            }
            fputs("\"}\n", stdout);
        } else {
            fwrite(para, 1, n, stdout);
            fputs("\n\n", stdout);
        }
        out += (long long)n + 2;
    }
    return 0;
}
