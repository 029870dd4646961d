//! Tuning for the memory allocator the `shears` binary uses.
//!
//! CPU training allocates and frees many large buffers per batch (activations,
//! im2col matrices, gradients of tens of MB). glibc's malloc maps and unmaps
//! them from the OS each time and pays a page fault per 4 KiB on every reuse;
//! mimalloc, told never to hand memory back during a run, reuses them. The
//! gain is measured in BENCHMARKS.md.
//!
//! The library does not choose the allocator: a binary that wants this one
//! declares `#[global_allocator] static GLOBAL: mimalloc::MiMalloc =
//! mimalloc::MiMalloc;` (as `main.rs` and the throughput benchmark do) and
//! calls [`tune_for_training`] at start-up.

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same number in
/// v2 and in v3, which libmimalloc-sys 0.1.49 builds by default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// `mi_option_arena_eager_commit` in mimalloc's `mi_option_e`.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Keeps freed memory for reuse instead of returning it to the OS (purge
/// delay -1) and commits arenas eagerly. Call once at start-up, before heavy
/// work; later calls are harmless. Without mimalloc as the global allocator
/// it only changes settings of an allocator that is not used.
pub fn tune_for_training() {
    // SAFETY: mi_option_set only stores an integer in mimalloc's option
    // table; both option ids exist in the bundled mimalloc (v2), and the
    // values are documented as valid (-1 = never purge, 1 = eager commit).
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 1);
    }
}
