// SPDX-License-Identifier: MIT
// class_weights.h: the train stage's class-weighted loss for classification fine-tuning
// (--class-weights auto|LABEL=W,...  --label-field NAME). Each supervised example carries its
// record's label (default field "label", passed through by tokenize encode); every scored token
// of an example of class c counts w_c times, and the step's loss is the weighted mean
// sum_i w_i l_i / sum_i w_i over scored tokens (PyTorch's CrossEntropyLoss(weight=) with
// reduction "mean"). auto = inverse frequency, w_c = N / (K n_c) over the training examples
// (scikit-learn's "balanced"): a balanced set gets weight 1 everywhere. main.c calls these hooks.
#ifndef KILN_TRAIN_CLASS_WEIGHTS_H
#define KILN_TRAIN_CLASS_WEIGHTS_H

#include "cli.h"
#include "json.h"
#include "model.h"
#include "train.h"

#include <getopt.h>
#include <stdbool.h>

enum {
    CW_OPT_CLASS_WEIGHTS = CLI_OPT_FIRST_STAGE + 300,
    CW_OPT_LABEL_FIELD,
};

#define CW_LONGOPTS                                                                            \
    {"class-weights", required_argument, 0, CW_OPT_CLASS_WEIGHTS},                             \
        {"label-field", required_argument, 0, CW_OPT_LABEL_FIELD}

enum { CW_MAX_CLASSES = 256 };

struct class_weights {
    const char *spec;  // NULL: off; "auto"; or "LABEL=W,LABEL=W"
    const char *field; // record field holding the label (default "label")
    // after cw_setup
    int n_class;
    char *label[CW_MAX_CLASSES];
    double w[CW_MAX_CLASSES];
    uint64_t count[CW_MAX_CLASSES]; // training examples per class
    float *ex_w;                    // [n_ex]: weight of training example i
};

void cw_defaults(struct class_weights *cw);
// Handles one of the options above: true when opt was one (dies with a usage error on a bad
// value).
bool cw_opt(struct class_weights *cw, int opt, const char *arg);
// After the training set is loaded (supervised): reads each example's label from files (the
// same list, same order) and fixes the weights. An example without the label field, or a
// class missing from an explicit list, is an error naming file:line. 0 or -1 with err.
int cw_setup(struct class_weights *cw, const struct dataset *d, char *const *files,
             struct kerr *err);
// Weight of training example i (1 when off).
float cw_weight(const struct class_weights *cw, size_t i);
// The weights as JSON {"label": w, ...} into b (recorded in the checkpoint's args and the log).
void cw_json(const struct class_weights *cw, struct json_writer *w);
// model_forward_backward with a weight per sequence: row_w[j] scales sequence j's token losses
// and gradients (then everything by grad_scale = 1 / the step's weighted scored count).
// Returns sum_r row_w[r / t] * loss[r] over scored rows.
double cw_forward_backward(struct model *m, struct model_acts *a, struct kpool *p,
                           const int *tokens, const int *targets, const float *row_w, int b,
                           int t, float grad_scale);
void cw_free(struct class_weights *cw);

#endif
