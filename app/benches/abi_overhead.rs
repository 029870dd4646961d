//! Cost of calling a criterion through the plugin C ABI instead of directly:
//! one global unstructured pruning step (copy weights out, score, threshold,
//! write masks) with the built-in `magnitude` criterion linked statically vs
//! the same crate loaded from its cdylib.
//!
//! ```sh
//! cargo build --release -p shears-magnitude --features export
//! cargo bench -p shears --bench abi_overhead -- --lib target/release/libshears_magnitude.so
//! ```
//! Prints one JSON line per weight set (ResNet-20, an 11.4M-parameter MLP).

use std::time::Instant;

use candle_core::Device;
use shears::model::{ModelSpec, Network};
use shears::plugins::Registry;
use shears::prune::{prune_to, PruneMode};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The allocator the `shears` binary uses (see `shears::alloc`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> shears::Result<()> {
    shears::alloc::tune_for_training();
    let args: Vec<String> = std::env::args().collect();
    let lib = args
        .iter()
        .position(|a| a == "--lib")
        .and_then(|i| args.get(i + 1))
        .expect("--lib PATH to libshears_magnitude built with --features export");
    let builtin = Registry::builtin();
    let mut loaded = Registry::default();
    loaded.add_library(std::path::Path::new(lib))?;
    let sets = [
        (
            "resnet20",
            ModelSpec::Resnet20 { width: 16 },
            [3, 32, 32],
            15,
        ),
        (
            "mlp-11m",
            ModelSpec::Mlp {
                hidden: vec![3000, 3000],
            },
            [1, 28, 28],
            5,
        ),
    ];
    for (name, spec, input, reps) in sets {
        let base = Network::new(spec.build(input, 10)?, 0, &Device::Cpu)?;
        let time = |reg: &Registry| -> shears::Result<f64> {
            let mut t = Vec::new();
            for _ in 0..reps {
                let mut net = base.try_clone()?;
                let mut c = reg.criterion("magnitude", &serde_json::json!({}))?;
                let t0 = Instant::now();
                prune_to(
                    &mut net,
                    c.as_mut(),
                    "magnitude",
                    PruneMode::default(),
                    0.5,
                    Default::default(),
                )?;
                t.push(t0.elapsed().as_secs_f64());
            }
            Ok(median(t))
        };
        // interleave to share any drift in machine load
        let direct = time(&builtin)?;
        let abi = time(&loaded)?;
        let direct2 = time(&builtin)?;
        let abi2 = time(&loaded)?;
        let (d, a) = (direct.min(direct2), abi.min(abi2));
        println!(
            "{{\"weights\":\"{name}\",\"params\":{},\"direct_ms\":{:.2},\"abi_ms\":{:.2},\"overhead_pct\":{:.2}}}",
            base.arch.num_params(),
            d * 1e3,
            a * 1e3,
            (a - d) / d * 100.0
        );
    }
    Ok(())
}
