//! The worker that owns a running comparison: a thread running the engine's
//! [`run_comparison`] and writing the output folder, talking to the UI only
//! by messages. [`Progress`] turns its events into what the Run view shows.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;

use crate::experiment::{
    output::Recorder, run_comparison, ComparisonResults, Context, Event, ExperimentConfig,
    OutputDir,
};
use crate::plugins::Registry;

/// What the worker tells the UI.
#[derive(Debug)]
pub enum Message {
    /// Something happened (as in events.jsonl).
    Event(Event),
    /// The results so far (after a base model, a run, or the end).
    Results(Box<ComparisonResults>),
    /// The comparison ended: its final results, or the setup error that
    /// stopped it before it began (bad config, data, model or device).
    Done(Result<Box<ComparisonResults>, String>),
}

/// Where the worker finds plugins (it builds its own registry: loaded
/// libraries are not shared across threads).
#[derive(Debug, Clone, Default)]
pub struct PluginSources {
    /// Extra plugin folders.
    pub dirs: Vec<PathBuf>,
    /// Libraries added by the user.
    pub libraries: Vec<PathBuf>,
}

impl PluginSources {
    /// Built-ins, the default folders, `dirs` and `libraries`.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::discover(&self.dirs);
        for lib in &self.libraries {
            let _ = r.add_library(lib);
        }
        r
    }
}

/// A comparison running on its own thread.
pub struct RunHandle {
    rx: Receiver<Message>,
    cancel: Arc<AtomicBool>,
    /// The output folder.
    pub out_dir: PathBuf,
    finished: bool,
}

impl RunHandle {
    /// Starts `cfg` writing to `out_dir`; `wake` is called after every
    /// message (the UI passes a repaint request).
    pub fn start(
        cfg: ExperimentConfig,
        out_dir: PathBuf,
        plugins: PluginSources,
        wake: impl Fn() + Send + 'static,
    ) -> Self {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let dir = out_dir.clone();
        std::thread::Builder::new()
            .name("shears-worker".into())
            .spawn(move || {
                let send = |m: Message| {
                    let _ = tx.send(m);
                    wake();
                };
                let outcome = (|| {
                    let registry = plugins.registry();
                    cfg.validate(&registry)?;
                    let output = OutputDir::new(&dir, &cfg)?;
                    let mut recorder = Recorder::new(output, &stop);
                    let mut sink = |e: &Event, r: &ComparisonResults| {
                        recorder.record(e, r);
                        send(Message::Event(e.clone()));
                        if matches!(
                            e,
                            Event::BaseReady(_)
                                | Event::RunFinished(_)
                                | Event::ControlFinished(_)
                                | Event::Finished { .. }
                        ) {
                            send(Message::Results(Box::new(r.clone())));
                        }
                    };
                    let ctx = Context {
                        registry: &registry,
                        cancel: &stop,
                        out_dir: Some(&dir),
                    };
                    let mut results = run_comparison(&cfg, &ctx, &mut sink)?;
                    recorder.finish(&mut results);
                    Ok::<_, crate::error::Error>(results)
                })();
                send(Message::Done(
                    outcome.map(Box::new).map_err(|e| e.to_string()),
                ));
            })
            .expect("the OS can start a thread");
        Self {
            rx,
            cancel,
            out_dir,
            finished: false,
        }
    }

    /// Asks the comparison to stop after the current batch; finished runs are kept.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Whether cancelling was asked for.
    pub fn cancelling(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Whether the worker has sent its last message.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The messages that arrived since the last call.
    pub fn poll(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(m) => {
                    if matches!(m, Message::Done(_)) {
                        self.finished = true;
                    }
                    out.push(m);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !self.finished {
                        self.finished = true;
                        out.push(Message::Done(Err(
                            "the worker thread stopped unexpectedly (a bug; runs finished before it are in the output folder)".into()
                        )));
                    }
                    break;
                }
            }
        }
        out
    }
}
