//! The `shears` binary: see `shears --help`.

/// mimalloc, tuned by [`shears::alloc::tune_for_training`] (see there why).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    shears::alloc::tune_for_training();
    std::process::exit(shears::cli::run(std::env::args_os()));
}
