use candle_core::{Device, Tensor};
use std::time::Instant;
fn t<F: FnMut() -> candle_core::Result<Tensor>>(name: &str, mut f: F) {
    let _ = f().unwrap();
    let t0 = Instant::now();
    for _ in 0..5 {
        let _ = f().unwrap();
    }
    println!("{name}: {:.2} ms", t0.elapsed().as_secs_f64() * 200.0);
}
fn main() {
    let d = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (128, 1, 28, 28), &d).unwrap();
    let w1 = candle_core::Var::randn(0f32, 0.1, (6, 1, 5, 5), &d).unwrap();
    let x2 = Tensor::randn(0f32, 1.0, (128, 6, 14, 14), &d).unwrap();
    let w2 = candle_core::Var::randn(0f32, 0.1, (16, 6, 5, 5), &d).unwrap();
    t("conv1 fwd", || x.conv2d(&w1, 2, 1, 1, 1));
    t("conv2 fwd", || x2.conv2d(&w2, 0, 1, 1, 1));
    t("conv1 fwd+bwd", || {
        let y = x.conv2d(&w1, 2, 1, 1, 1)?;
        let g = y.sum_all()?.backward()?;
        Ok(g.get(&w1).unwrap().clone())
    });
    t("conv2 fwd+bwd", || {
        let y = x2.conv2d(&w2, 0, 1, 1, 1)?;
        let g = y.sum_all()?.backward()?;
        Ok(g.get(&w2).unwrap().clone())
    });
    let xv = candle_core::Var::randn(0f32, 1.0, (128, 6, 28, 28), &d).unwrap();
    t("maxpool fwd", || xv.max_pool2d(2));
    t("maxpool fwd+bwd", || {
        let y = xv.max_pool2d(2)?;
        let g = y.sum_all()?.backward()?;
        Ok(g.get(&xv).unwrap().clone())
    });
    t("relu fwd+bwd", || {
        let y = xv.relu()?;
        let g = y.sum_all()?.backward()?;
        Ok(g.get(&xv).unwrap().clone())
    });
}
