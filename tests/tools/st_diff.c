// SPDX-License-Identifier: MIT
// st_diff: compares the tensors of two safetensors files byte for byte.
//   st_diff A.safetensors B.safetensors
// prints "same NAME" or "diff NAME" per tensor of A (in A's order; "missing NAME" when B
// lacks it) and exits 0; exit 1 on a read error.
#include "safetensors.h"

#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
    struct st_file a, b;
    struct kerr err;
    if (argc != 3) {
        fprintf(stderr, "usage: st_diff A B\n");
        return 2;
    }
    if (st_open(&a, argv[1], &err) < 0 || st_open(&b, argv[2], &err) < 0) {
        fprintf(stderr, "st_diff: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < a.n; i++) {
        const struct st_tensor *ta = &a.tensors[i], *tb = st_find(&b, ta->name);
        const char *what = "missing";
        if (tb)
            what = ta->end - ta->begin == tb->end - tb->begin &&
                           memcmp(a.data + ta->begin, b.data + tb->begin,
                                  ta->end - ta->begin) == 0
                       ? "same"
                       : "diff";
        printf("%s %s\n", what, ta->name);
    }
    st_close(&a);
    st_close(&b);
    return 0;
}
