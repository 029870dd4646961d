//! The `shears` binary: see `shears --help`.

fn main() {
    shears::alloc::tune_for_training();
    std::process::exit(shears::cli::run(std::env::args_os()));
}
