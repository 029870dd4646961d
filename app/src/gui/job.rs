//! A long computation on its own thread that talks to the UI only by
//! messages: the shared machinery of the comparison and sensitivity workers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;

/// Messages a job sends; the last one says it ended.
pub trait JobMessage: Send + 'static {
    /// Whether this is the job's last message.
    fn is_last(&self) -> bool;
    /// The last message to report when the thread died without sending one.
    fn lost() -> Self;
}

/// A running job: its messages, its cancel flag, whether it ended.
pub struct Job<M> {
    rx: Receiver<M>,
    cancel: Arc<AtomicBool>,
    finished: bool,
}

impl<M: JobMessage> Job<M> {
    /// Runs `body(send, cancel)` on a thread named `name`; `wake` is called
    /// after every message, told whether it was the last (the UI passes a
    /// repaint request: soon for progress, at once for the end).
    pub fn spawn(
        name: &str,
        wake: impl Fn(bool) + Send + 'static,
        body: impl FnOnce(&dyn Fn(M), &AtomicBool) + Send + 'static,
    ) -> Self {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let send = |m: M| {
                    let last = m.is_last();
                    let _ = tx.send(m);
                    wake(last);
                };
                body(&send, &stop);
            })
            .expect("the OS can start a thread");
        Self {
            rx,
            cancel,
            finished: false,
        }
    }

    /// Asks the job to stop at its next check.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Whether stopping was asked for.
    pub fn cancelling(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Whether the job has sent its last message.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The messages that arrived since the last call (with
    /// [`JobMessage::lost`] once, should the thread die without a last one).
    pub fn poll(&mut self) -> Vec<M> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(m) => {
                    self.finished |= m.is_last();
                    out.push(m);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !self.finished {
                        self.finished = true;
                        out.push(M::lost());
                    }
                    break;
                }
            }
        }
        out
    }
}
