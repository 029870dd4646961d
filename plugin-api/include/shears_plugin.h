/*
 * shears_plugin.h - the Shears plugin C ABI, version 1.
 *
 * This header is the C (and C++) form of `plugin-api/src/abi.rs`; the two
 * describe exactly the same contract, type for type and field for field.
 *
 * A plugin library is a shared library (.so / .dylib / .dll) that exports
 * one function, SHEARS_ENTRY_SYMBOL ("shears_plugin_v1"), of type
 * ShearsEntryFn. It returns a pointer to a ShearsPluginList describing the
 * criteria (weight / channel scorers) and schedules (prune / fine-tune /
 * stop deciders) the library provides.
 *
 * Rules:
 * - The list, its descriptors and every string they point to must stay valid
 *   until the library is unloaded (static storage is simplest). The list's
 *   first field is the ABI version, so a host of any version can read it; a
 *   host refuses a library whose version differs from its own.
 * - Data crosses as host memory: float buffers with lengths, shapes as
 *   uint64_t, NUL-terminated UTF-8 strings. Pointers the host passes are
 *   valid only for the duration of the call.
 * - The plugin never frees host memory and the host never frees plugin
 *   memory: an instance made by a plugin's `create` is released by the same
 *   plugin's `destroy`.
 * - Every call (except `destroy` and `needs`) returns a status:
 *   SHEARS_STATUS_OK, SHEARS_STATUS_ERROR or SHEARS_STATUS_PANIC. On
 *   failure the plugin writes a message into the host's ShearsErrorBuf (at
 *   most cap - 1 bytes of UTF-8 plus a terminating NUL).
 * - A C++ plugin must not let exceptions escape: catch them and return
 *   SHEARS_STATUS_PANIC with the message.
 * - An instance is used by one thread at a time, but not necessarily always
 *   the same thread.
 * - The host validates every answer (score buffer length, finite scores,
 *   sparsity in [0, 1) and non-decreasing, bounded number of steps).
 */

#ifndef SHEARS_PLUGIN_H
#define SHEARS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Version of the plugin contract this header describes. */
#define SHEARS_ABI_VERSION 1u

/** Name of the entry symbol every plugin library exports. */
#define SHEARS_ENTRY_SYMBOL "shears_plugin_v1"

/* ---- Statuses returned by plugin calls ------------------------------- */

/** The call succeeded. */
#define SHEARS_STATUS_OK 0
/** The call failed; the error buffer holds the message. */
#define SHEARS_STATUS_ERROR 1
/** The plugin panicked (or threw); the error buffer holds the message. */
#define SHEARS_STATUS_PANIC 2

/* ---- ShearsPlugin.kind ------------------------------------------------ */

/** A criterion: scores the weights or output channels of a layer. */
#define SHEARS_KIND_CRITERION 1u
/** A schedule: decides when to prune, how far, and how long to fine-tune. */
#define SHEARS_KIND_SCHEDULE 2u

/* ---- ShearsLayer.kind ------------------------------------------------- */

/** Fully connected, shape [out, in]. */
#define SHEARS_LAYER_LINEAR 0u
/** 2-D convolution, shape [out, in, kh, kw]. */
#define SHEARS_LAYER_CONV2D 1u

/* ---- ShearsLayer.granularity ------------------------------------------ */

/** One score per weight: out_len == len. */
#define SHEARS_GRANULARITY_UNSTRUCTURED 0u
/** One score per output channel: out_len == shape[0]. */
#define SHEARS_GRANULARITY_STRUCTURED_CHANNEL 1u

/* ---- Bits of a criterion's `needs` answer ----------------------------- */

/** The criterion wants gradients (ShearsLayer.grad). */
#define SHEARS_NEEDS_GRADIENT 1u
/** The criterion wants input activation norms (ShearsLayer.act_norms). */
#define SHEARS_NEEDS_ACTIVATIONS 2u

/* ---- ShearsScheduleState.last ----------------------------------------- */

/** Nothing happened yet: the run starts from the dense base model. */
#define SHEARS_PHASE_START 0u
/** The host just pruned to the requested sparsity. */
#define SHEARS_PHASE_PRUNED 1u
/** The host just finished a fine-tuning phase. */
#define SHEARS_PHASE_FINETUNED 2u

/* ---- ShearsDecision.kind ---------------------------------------------- */

/** The run is over. */
#define SHEARS_DECISION_STOP 0u
/** Prune to `sparsity` (overall, non-decreasing, < 1). */
#define SHEARS_DECISION_PRUNE 1u
/** Fine-tune up to `max_epochs`, stopping early after `patience` epochs
 *  without improvement when `patience` > 0. */
#define SHEARS_DECISION_FINETUNE 2u

/* ---- Data types ------------------------------------------------------- */

/**
 * A host-owned buffer for an error message: the plugin writes at most
 * `cap - 1` bytes of UTF-8 and a terminating NUL. `ptr` may be null (then
 * nothing is written).
 */
typedef struct ShearsErrorBuf {
    /** Start of the buffer. */
    char *ptr;
    /** Its size in bytes. */
    size_t cap;
} ShearsErrorBuf;

/** One layer to score. All pointers are valid for the duration of the call. */
typedef struct ShearsLayer {
    /** Layer name (NUL-terminated UTF-8). */
    const char *name;
    /** SHEARS_LAYER_LINEAR or SHEARS_LAYER_CONV2D. */
    uint32_t kind;
    /** SHEARS_GRANULARITY_UNSTRUCTURED or SHEARS_GRANULARITY_STRUCTURED_CHANNEL. */
    uint32_t granularity;
    /** Weight shape, `rank` entries. */
    const uint64_t *shape;
    /** Number of shape entries. */
    size_t rank;
    /** Weights, `len` values, row-major (pruned ones are exactly zero). */
    const float *weight;
    /** Mask (1 kept, 0 pruned), `len` values. */
    const float *mask;
    /** Number of weights. */
    size_t len;
    /** Gradient, `len` values, or null. */
    const float *grad;
    /** Per-input activation L2 norms, `act_len` values, or null. */
    const float *act_norms;
    /** Number of activation norms (shape[1]), 0 when `act_norms` is null. */
    size_t act_len;
} ShearsLayer;

/** What a schedule is told before each decision. */
typedef struct ShearsScheduleState {
    /** Prunes carried out so far. */
    uint32_t prune_steps;
    /** SHEARS_PHASE_START, SHEARS_PHASE_PRUNED or SHEARS_PHASE_FINETUNED. */
    uint32_t last;
    /** Sparsity now (fraction of prunable weights that are zero). */
    float current_sparsity;
    /** Target of the run, in [0, 1). */
    float target_sparsity;
    /** Fine-tuning epochs spent so far. */
    uint32_t epochs_spent;
    /** Validation accuracy after every fine-tuning epoch, oldest first. */
    const float *val_acc_history;
    /** Entries in `val_acc_history`. */
    size_t history_len;
} ShearsScheduleState;

/** A schedule's answer, written by the plugin. */
typedef struct ShearsDecision {
    /** SHEARS_DECISION_STOP, SHEARS_DECISION_PRUNE or SHEARS_DECISION_FINETUNE. */
    uint32_t kind;
    /** Target sparsity of a prune. */
    float sparsity;
    /** Epoch limit of a fine-tune. */
    uint32_t max_epochs;
    /** Patience of a fine-tune (0 = none). */
    uint32_t patience;
} ShearsDecision;

/* ---- Function types --------------------------------------------------- */

/** Creates an instance from JSON parameters (NUL-terminated; "{}" or ""
 *  means defaults); writes it to `*out`. */
typedef int32_t (*ShearsCreateFn)(const char *params_json, void **out, ShearsErrorBuf err);

/** Releases an instance made by the same plugin's `create`. */
typedef void (*ShearsDestroyFn)(void *instance);

/** A criterion's needs: a bit set of SHEARS_NEEDS_GRADIENT, SHEARS_NEEDS_ACTIVATIONS. */
typedef uint32_t (*ShearsNeedsFn)(void *instance);

/** Fills `out` (`out_len` values) with the scores of `layer` (higher = more
 *  important = kept longer). Scores must be finite. */
typedef int32_t (*ShearsScoreFn)(void *instance, const ShearsLayer *layer, float *out,
                                 size_t out_len, ShearsErrorBuf err);

/** Writes a schedule's next decision to `out`. */
typedef int32_t (*ShearsDecideFn)(void *instance, const ShearsScheduleState *state,
                                  ShearsDecision *out, ShearsErrorBuf err);

/** One plugin of a library: descriptor and function table. */
typedef struct ShearsPlugin {
    /** SHEARS_KIND_CRITERION or SHEARS_KIND_SCHEDULE. */
    uint32_t kind;
    /** Unique name a config refers to (NUL-terminated UTF-8). */
    const char *name;
    /** The plugin's own version, e.g. "0.1.0". */
    const char *version;
    /** One line for users. */
    const char *description;
    /** JSON Schema of the parameter object (must be valid JSON). */
    const char *params_schema;
    /** Makes an instance (required). */
    ShearsCreateFn create;
    /** Releases an instance (required). */
    ShearsDestroyFn destroy;
    /** Criteria: what the instance needs (null for schedules). */
    ShearsNeedsFn needs;
    /** Criteria: scores a layer (null for schedules). */
    ShearsScoreFn score;
    /** Schedules: decides the next step (null for criteria). */
    ShearsDecideFn decide;
} ShearsPlugin;

/** What the entry symbol returns. */
typedef struct ShearsPluginList {
    /** Must be SHEARS_ABI_VERSION; always the first field. */
    uint32_t abi_version;
    /** Number of plugins. */
    size_t count;
    /** `count` descriptors. */
    const ShearsPlugin *plugins;
} ShearsPluginList;

/** Type of the entry symbol. */
typedef const ShearsPluginList *(*ShearsEntryFn)(void);

/** Export attribute for the entry symbol. */
#if defined(_WIN32)
#define SHEARS_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define SHEARS_EXPORT __attribute__((visibility("default")))
#else
#define SHEARS_EXPORT
#endif

/**
 * The entry symbol every plugin library defines (exactly once):
 *
 *     SHEARS_EXPORT const ShearsPluginList *shears_plugin_v1(void) { ... }
 *
 * It may be called more than once and must return the same list each time,
 * or null on failure.
 */
SHEARS_EXPORT const ShearsPluginList *shears_plugin_v1(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SHEARS_PLUGIN_H */
