//! Training throughput (images/s) of LeNet-5 and ResNet-20 on random data:
//! forward, backward and an SGD step per batch, as the training loop runs
//! them (`shears::train::train_step`; `--autograd`: through Candle's autograd);
//! `--eval`: the evaluation-mode forward pass instead.
//!
//! `cargo bench -p shears --bench throughput -- [--batch 128] [--iters 20] [--models lenet5,resnet20] [--device cpu] [--autograd] [--skip-step] [--eval]`
//! prints one JSON line per model.

use std::time::Instant;

use candle_core::{DType, Tensor};
use shears::model::{ModelSpec, Network};
use shears::train::{Optimizer, OptimizerSpec};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The allocator the `shears` binary uses (see `shears::alloc`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> shears::Result<()> {
    shears::alloc::tune_for_training();
    let args: Vec<String> = std::env::args().collect();
    let batch: usize = arg(&args, "--batch", 128);
    let iters: usize = arg(&args, "--iters", 20);
    let models: String = arg(&args, "--models", "lenet5,resnet20".to_string());
    let device_name: String = arg(&args, "--device", "cpu".to_string());
    // Leave out the optimiser step, to see what it costs.
    let skip_step = args.iter().any(|a| a == "--skip-step");
    // Candle's autograd instead of the network's own backward pass (the
    // path other devices take).
    let autograd = args.iter().any(|a| a == "--autograd");
    // Evaluation throughput instead: the evaluation-mode forward pass.
    let eval = args.iter().any(|a| a == "--eval");
    let (device, dname) = shears::device::open(shears::device::parse(&device_name)?)?;
    for m in models.split(',') {
        let (spec, input) = match m {
            "lenet5" => (ModelSpec::Lenet5, [1, 28, 28]),
            "resnet20" => (ModelSpec::Resnet20 { width: 16 }, [3, 32, 32]),
            other => (ModelSpec::from_name(other)?, [3, 32, 32]),
        };
        let mut net = Network::new(spec.build(input, 10)?, 0, &device)?;
        let mut opt = Optimizer::new(OptimizerSpec::default());
        let x = Tensor::randn(0f32, 1.0, (batch, input[0], input[1], input[2]), &device)?;
        let y = Tensor::from_vec(
            (0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(),
            batch,
            &device,
        )?;
        let mut step = |net: &mut Network| -> shears::Result<()> {
            if eval {
                net.forward(&x, false)?;
                return Ok(());
            }
            if autograd {
                let loss = candle_nn::loss::cross_entropy(&net.forward(&x, true)?, &y)?;
                let grads = loss.backward()?;
                if !skip_step {
                    opt.step(net, &grads, 0.01)?;
                }
                return Ok(());
            }
            if skip_step {
                net.train_pass(&x, &y)?;
            } else {
                shears::train::train_step(net, &mut opt, &x, &y, 0.01)?;
            }
            Ok(())
        };
        for _ in 0..3 {
            step(&mut net)?;
        }
        device.synchronize()?;
        let t0 = Instant::now();
        for _ in 0..iters {
            step(&mut net)?;
        }
        device.synchronize()?;
        let secs = t0.elapsed().as_secs_f64();
        let mode = if eval { "eval" } else { "train" };
        let _ = DType::F32;
        println!(
            "{{\"impl\":\"candle\",\"mode\":\"{mode}\",\"model\":\"{m}\",\"device\":\"{dname}\",\"batch\":{batch},\"iters\":{iters},\"images_per_s\":{:.1}}}",
            (batch * iters) as f64 / secs
        );
    }
    Ok(())
}
