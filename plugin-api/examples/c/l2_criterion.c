/*
 * l2_criterion.c - a Shears plugin library written in C (ABI v1).
 *
 * It exports two plugins:
 *   - criterion "c-l2": unstructured, the score of a weight is w * w;
 *     structured (per output channel), the score of channel o is the L2
 *     norm of its weights, sqrt(sum of w^2 over in * kh * kw).
 *   - schedule "c-two-step": prune to target / 2, fine-tune 1 epoch, prune to
 *     the target, fine-tune 1 epoch, stop (a target <= 0 stops at once).
 * Neither takes parameters: `create` accepts "{}" (whitespace allowed) or an
 * empty string and rejects anything else with an error message.
 *
 * Build (from the repository root):
 *   cc -shared -fPIC -O2 -Wall -Wextra -Werror -I plugin-api/include \
 *      plugin-api/examples/c/l2_criterion.c -o libc_l2.so -lm
 *
 * Compile-time variants, used by the tests (tests/c_plugin.rs) to build
 * deliberately broken plugins; define at most one:
 *   -DSHEARS_TEST_WRONG_ABI        the plugin list reports abi_version 2.
 *   -DSHEARS_TEST_NO_ENTRY         the entry symbol is not exported.
 *   -DSHEARS_TEST_SEGFAULT_ON_LOAD a constructor dereferences a null pointer
 *                                  when the library is loaded (SIGSEGV).
 *   -DSHEARS_TEST_NAN              every score is NaN.
 *   -DSHEARS_TEST_SHORT            a score buffer of the wrong length is
 *                                  rejected with exactly "buffer too short".
 */

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shears_plugin.h"

/* ---- Error messages ---------------------------------------------------- */

/* Writes a printf-style message into the host's buffer: at most cap - 1
 * bytes, cut at a UTF-8 character boundary, always NUL-terminated. Does
 * nothing for a null or empty buffer. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static void set_error(ShearsErrorBuf err, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    size_t n;
    int w;

    if (err.ptr == NULL || err.cap == 0) {
        return;
    }
    va_start(ap, fmt);
    w = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w < 0) {
        msg[0] = '\0';
    }
    n = strlen(msg);
    if (n > err.cap - 1) {
        n = err.cap - 1;
        /* do not cut a multi-byte character: back up over continuation bytes */
        while (n > 0 && ((unsigned char)msg[n] & 0xC0u) == 0x80u) {
            n--;
        }
    }
    memcpy(err.ptr, msg, n);
    err.ptr[n] = '\0';
}

/* ---- Parameters -------------------------------------------------------- */

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_space(const char *p) {
    while (is_space(*p)) {
        p++;
    }
    return p;
}

/* Whether `params` is "", whitespace, or an empty JSON object. */
static int params_empty(const char *params) {
    const char *p = skip_space(params);
    if (*p == '\0') {
        return 1;
    }
    if (*p != '{') {
        return 0;
    }
    p = skip_space(p + 1);
    if (*p != '}') {
        return 0;
    }
    p = skip_space(p + 1);
    return *p == '\0';
}

static int32_t check_no_params(const char *who, const char *params_json, ShearsErrorBuf err) {
    if (params_json == NULL) {
        set_error(err, "%s: parameters are null", who);
        return SHEARS_STATUS_ERROR;
    }
    if (!params_empty(params_json)) {
        set_error(err, "%s takes no parameters, got `%.200s` (expected {})", who, params_json);
        return SHEARS_STATUS_ERROR;
    }
    return SHEARS_STATUS_OK;
}

/* ---- Instances ---------------------------------------------------------- */

/* Both plugins are stateless, but `create` must return a non-null instance;
 * the tag lets `score` / `decide` reject a pointer that is not theirs. */
#define TAG_L2 0x4c32u       /* "L2" */
#define TAG_TWO_STEP 0x3253u /* "2S" */

typedef struct Instance {
    uint32_t tag;
} Instance;

static int32_t make_instance(uint32_t tag, void **out, ShearsErrorBuf err) {
    Instance *inst;
    if (out == NULL) {
        set_error(err, "output pointer is null");
        return SHEARS_STATUS_ERROR;
    }
    inst = (Instance *)malloc(sizeof *inst);
    if (inst == NULL) {
        set_error(err, "out of memory");
        return SHEARS_STATUS_ERROR;
    }
    inst->tag = tag;
    *out = inst;
    return SHEARS_STATUS_OK;
}

static void destroy_instance(void *instance) {
    free(instance);
}

static int has_tag(const void *instance, uint32_t tag) {
    return instance != NULL && ((const Instance *)instance)->tag == tag;
}

/* ---- Criterion "c-l2" --------------------------------------------------- */

static int32_t l2_create(const char *params_json, void **out, ShearsErrorBuf err) {
    int32_t st = check_no_params("c-l2", params_json, err);
    if (st != SHEARS_STATUS_OK) {
        return st;
    }
    return make_instance(TAG_L2, out, err);
}

static uint32_t l2_needs(void *instance) {
    (void)instance;
    return 0; /* weights only: no gradients, no activation norms */
}

static int32_t l2_score(void *instance, const ShearsLayer *layer, float *out, size_t out_len,
                        ShearsErrorBuf err) {
    const char *name;
    size_t expected, fan_in, i;

    if (!has_tag(instance, TAG_L2) || layer == NULL || out == NULL) {
        set_error(err, "null or foreign instance, null layer or null output");
        return SHEARS_STATUS_ERROR;
    }
    name = layer->name != NULL ? layer->name : "?";
    if (layer->rank < 1 || layer->shape == NULL || (layer->len > 0 && layer->weight == NULL)) {
        set_error(err, "layer `%.200s`: missing shape or weights", name);
        return SHEARS_STATUS_ERROR;
    }
    /* fan_in = in * kh * kw; check shape[0] * fan_in == len without overflow */
    fan_in = 1;
    for (i = 1; i < layer->rank; i++) {
        uint64_t d = layer->shape[i];
        if (d != 0 && fan_in > SIZE_MAX / d) {
            set_error(err, "layer `%.200s`: shape overflows", name);
            return SHEARS_STATUS_ERROR;
        }
        fan_in *= (size_t)d;
    }
    if (fan_in != 0 && layer->shape[0] > SIZE_MAX / fan_in) {
        set_error(err, "layer `%.200s`: shape overflows", name);
        return SHEARS_STATUS_ERROR;
    }
    if ((size_t)layer->shape[0] * fan_in != layer->len) {
        set_error(err, "layer `%.200s`: weight has %zu values but its shape does not match",
                  name, layer->len);
        return SHEARS_STATUS_ERROR;
    }

    switch (layer->granularity) {
    case SHEARS_GRANULARITY_UNSTRUCTURED:
        expected = layer->len;
        break;
    case SHEARS_GRANULARITY_STRUCTURED_CHANNEL:
        expected = (size_t)layer->shape[0];
        break;
    default:
        set_error(err, "layer `%.200s`: unknown granularity %u", name,
                  (unsigned)layer->granularity);
        return SHEARS_STATUS_ERROR;
    }
    if (out_len != expected) {
#ifdef SHEARS_TEST_SHORT
        set_error(err, "buffer too short");
#else
        set_error(err, "layer `%.200s`: score buffer has %zu entries, expected %zu", name,
                  out_len, expected);
#endif
        return SHEARS_STATUS_ERROR;
    }

#ifdef SHEARS_TEST_NAN
    for (i = 0; i < out_len; i++) {
        out[i] = NAN;
    }
#else
    if (layer->granularity == SHEARS_GRANULARITY_UNSTRUCTURED) {
        for (i = 0; i < layer->len; i++) {
            out[i] = layer->weight[i] * layer->weight[i];
        }
    } else {
        for (size_t o = 0; o < expected; o++) {
            const float *w = layer->weight + o * fan_in;
            double sum = 0.0;
            for (size_t k = 0; k < fan_in; k++) {
                sum += (double)w[k] * (double)w[k];
            }
            out[o] = (float)sqrt(sum);
        }
    }
#endif
    return SHEARS_STATUS_OK;
}

/* ---- Schedule "c-two-step" ---------------------------------------------- */

static int32_t two_step_create(const char *params_json, void **out, ShearsErrorBuf err) {
    int32_t st = check_no_params("c-two-step", params_json, err);
    if (st != SHEARS_STATUS_OK) {
        return st;
    }
    return make_instance(TAG_TWO_STEP, out, err);
}

static int32_t two_step_decide(void *instance, const ShearsScheduleState *state,
                               ShearsDecision *out, ShearsErrorBuf err) {
    ShearsDecision d;

    if (!has_tag(instance, TAG_TWO_STEP) || state == NULL || out == NULL) {
        set_error(err, "null or foreign instance, null state or null output");
        return SHEARS_STATUS_ERROR;
    }
    memset(&d, 0, sizeof d);
    d.kind = SHEARS_DECISION_STOP;
    if (!(state->target_sparsity > 0.0f)) {
        /* nothing to prune (also catches NaN) */
    } else if (state->last == SHEARS_PHASE_PRUNED) {
        d.kind = SHEARS_DECISION_FINETUNE;
        d.max_epochs = 1;
        d.patience = 0;
    } else if (state->last == SHEARS_PHASE_START || state->last == SHEARS_PHASE_FINETUNED) {
        if (state->prune_steps == 0) {
            d.kind = SHEARS_DECISION_PRUNE;
            d.sparsity = state->target_sparsity / 2.0f;
        } else if (state->prune_steps == 1) {
            d.kind = SHEARS_DECISION_PRUNE;
            d.sparsity = state->target_sparsity;
        }
        /* two prunes and their fine-tunes done: stop */
    } else {
        set_error(err, "unknown phase %u", (unsigned)state->last);
        return SHEARS_STATUS_ERROR;
    }
    *out = d;
    return SHEARS_STATUS_OK;
}

/* ---- Descriptors and entry symbol ----------------------------------------- */

static const char EMPTY_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}";

static const ShearsPlugin PLUGINS[] = {
    {
        SHEARS_KIND_CRITERION,
        "c-l2",
        "0.1.0",
        "squared weight (unstructured) or channel L2 norm (structured), written in C",
        EMPTY_SCHEMA,
        l2_create,
        destroy_instance,
        l2_needs,
        l2_score,
        NULL,
    },
    {
        SHEARS_KIND_SCHEDULE,
        "c-two-step",
        "0.1.0",
        "prune to half the target, fine-tune 1 epoch, prune to the target, fine-tune 1 epoch",
        EMPTY_SCHEMA,
        two_step_create,
        destroy_instance,
        NULL,
        NULL,
        two_step_decide,
    },
};

#ifdef SHEARS_TEST_WRONG_ABI
#define LIST_ABI_VERSION 2u
#else
#define LIST_ABI_VERSION SHEARS_ABI_VERSION
#endif

static const ShearsPluginList LIST = {
    LIST_ABI_VERSION,
    sizeof PLUGINS / sizeof PLUGINS[0],
    PLUGINS,
};

#ifdef SHEARS_TEST_NO_ENTRY
/* Same function under another, non-exported name: the library loads but is
 * not a Shears plugin. */
static const ShearsPluginList *not_the_entry(void) {
    return &LIST;
}
const ShearsPluginList *(*volatile shears_test_keep_alive)(void) = not_the_entry;
#else
SHEARS_EXPORT const ShearsPluginList *shears_plugin_v1(void) {
    return &LIST;
}
#endif

#ifdef SHEARS_TEST_SEGFAULT_ON_LOAD
/* Read through a volatile pointer so the compiler cannot turn the null
 * dereference into a trap instruction (SIGILL): a real SIGSEGV happens. */
int *volatile shears_test_null = NULL;

__attribute__((constructor)) static void crash_on_load(void) {
    *shears_test_null = 1;
    /* not reached; in case a handler swallowed the fault, crash for sure */
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
}
#endif
