// SPDX-License-Identifier: MIT
// eval_tiny_model: writes a small random Llama checkpoint directory for evaluate's tests —
// config.json, model.safetensors, generation_config.json and a tokenizer.json trained on a
// few built-in sentences (vocabulary 300 with <|endoftext|>), so tests need neither the train
// nor the tokenize stage. Deterministic for a given seed.
//   eval_tiny_model DIR [SEED [VOCAB_PAD]]   VOCAB_PAD: model vocabulary minus the tokenizer's
//   (negative makes a model too small for its tokenizer).
#include "checkpoint.h"
#include "tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: eval_tiny_model DIR [SEED [VOCAB_PAD]]\n");
        return 2;
    }
    const char *dir = argv[1];
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    int pad = argc > 3 ? atoi(argv[3]) : 0;
    static const char *const text[] = {
        "Win a free prize now! Click here to claim your cash reward.",
        "Meeting moved to Tuesday; please bring the quarterly report.",
        "Cheap pills, no prescription, limited offer, buy now.",
        "Can you review my patch before lunch? Thanks.",
        "Label: spam ham spam ham",
    };
    struct kerr err;
    const char *specials[] = {"<|endoftext|>"};
    struct tok_train_opts to = {
        .vocab_size = 300, .specials = specials, .n_specials = 1, .pre = TOK_PRE_GPT2};
    struct tok_trainer *tr = tok_trainer_new(&to, &err);
    bool ok = tr != NULL;
    for (size_t i = 0; ok && i < sizeof text / sizeof *text; i++)
        ok = tok_trainer_add(tr, text[i], strlen(text[i]), &err) == 0;
    struct tok *t = ok ? tok_trainer_finish(tr, &err) : NULL;
    tok_trainer_del(tr);
    if (!t) {
        fprintf(stderr, "eval_tiny_model: %s\n", err.msg);
        return 1;
    }
    struct model_config c;
    model_config_preset(&c, "tiny");
    c.vocab = (int)tok_vocab_size(t) + pad;
    c.dim = 64;
    c.n_layers = 2;
    c.n_heads = 2;
    c.n_kv_heads = 2;
    c.ffn = 128;
    c.max_seq = 64;
    c.eos_id = tok_special_id(t, "<|endoftext|>");
    c.bos_id = c.eos_id;
    struct model m;
    if (model_init(&m, &c, &err) < 0) {
        fprintf(stderr, "eval_tiny_model: %s\n", err.msg);
        return 1;
    }
    model_init_random(&m, seed);
    mkdir(dir, 0777);
    struct buf js = {0}, path = {0};
    tok_save_hf(t, &js);
    buf_printf(&path, "%s/tokenizer.json", dir);
    if (ckpt_save(dir, &m, ST_F32, &err) < 0 || ckpt_write_file(path.p, js.p, js.len, &err) < 0) {
        fprintf(stderr, "eval_tiny_model: %s\n", err.msg);
        return 1;
    }
    buf_free(&js);
    buf_free(&path);
    model_free(&m);
    tok_del(t);
    return 0;
}
