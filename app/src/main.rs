//! The `shears` binary: see `shears --help`.

fn main() {
    std::process::exit(shears::cli::run(std::env::args_os()));
}
