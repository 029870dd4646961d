//! The worker that owns a sensitivity analysis: a thread that prepares the
//! experiment's base model (its checkpoint, or trained as a comparison
//! would), runs the engine's [`run_sensitivity`] and saves the result,
//! talking to the UI only by messages.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;

use super::worker::PluginSources;
use crate::experiment::runner::first_base;
use crate::experiment::sensitivity::{run_sensitivity, save, SensitivityResults, SensitivitySpec};
use crate::experiment::ExperimentConfig;

/// What the analysis tells the UI.
#[derive(Debug)]
pub enum SensitivityMessage {
    /// How far it is, in words and as a fraction.
    Progress(String, f32),
    /// It ended: the results and the folder they were saved in, or why not.
    Done(Result<(Box<SensitivityResults>, PathBuf), String>),
}

/// A sensitivity analysis running on its own thread.
pub struct SensitivityHandle {
    rx: Receiver<SensitivityMessage>,
    cancel: Arc<AtomicBool>,
    finished: bool,
}

impl SensitivityHandle {
    /// Starts the analysis of `cfg`'s model with `spec`, saving into
    /// `out_dir`; `wake` is called after every message.
    pub fn start(
        cfg: ExperimentConfig,
        spec: SensitivitySpec,
        out_dir: PathBuf,
        plugins: PluginSources,
        wake: impl Fn() + Send + 'static,
    ) -> Self {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        std::thread::Builder::new()
            .name("shears-sensitivity".into())
            .spawn(move || {
                let send = |m: SensitivityMessage| {
                    let _ = tx.send(m);
                    wake();
                };
                let outcome = (|| {
                    let registry = plugins.registry();
                    let mut on_epoch = |r: crate::train::EpochReport| {
                        let what = format!("training the base model: epoch {}/{}", r.epoch, r.of);
                        send(SensitivityMessage::Progress(what, 0.0));
                    };
                    let (net, data) = first_base(&cfg, &stop, &mut on_epoch)?;
                    let mut on_progress = |done: usize, total: usize| {
                        let what = format!("pruned and evaluated {done}/{total}");
                        send(SensitivityMessage::Progress(
                            what,
                            done as f32 / total.max(1) as f32,
                        ));
                    };
                    let r =
                        run_sensitivity(&net, &data, &spec, &registry, &stop, &mut on_progress)?;
                    save(&out_dir, &r)?;
                    Ok((Box::new(r), out_dir))
                })();
                send(SensitivityMessage::Done(
                    outcome.map_err(|e: crate::error::Error| e.to_string()),
                ));
            })
            .expect("spawn the sensitivity thread");
        Self {
            rx,
            cancel,
            finished: false,
        }
    }

    /// Messages since the last call.
    pub fn poll(&mut self) -> Vec<SensitivityMessage> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(m) => {
                    if matches!(m, SensitivityMessage::Done(_)) {
                        self.finished = true;
                    }
                    out.push(m);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.finished = true;
                    break;
                }
            }
        }
        out
    }

    /// Whether it has ended.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Asks it to stop at the next evaluation.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}
