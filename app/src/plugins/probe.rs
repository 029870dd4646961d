//! Trying a plugin library before trusting it: load it and call each of its
//! plugins once ([`probe_library`]), in this process or, for a library not
//! yet known to be safe, in a child process ([`check_in_child`]) that a crash
//! or hang cannot take the caller down with. Used by `shears plugins check`
//! and by the app before it loads a new library.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use shears_plugin_api::{Decision, Granularity, LayerKind, LayerView, PluginKind, ScheduleState};

use super::load_library;
use crate::error::{Error, Result};

/// How long the child process may take to load and probe a library.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// Loads and probes the plugin library `file` in a child process of the
/// `shears` executable `exe` (`shears plugins probe FILE`, which runs [`probe_library`]), so a library
/// that crashes or hangs on load cannot take the caller down. Returns the
/// probe's report (one line per plugin); the error names the file.
pub fn check_in_child(exe: &Path, file: &Path) -> Result<String> {
    let mut child = Command::new(exe)
        .args(["plugins", "probe"])
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start the probe process: {e}")))?;
    // Drain both pipes while waiting, so a chatty plugin cannot block the child.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| Error::Other(e.to_string()))? {
            break s;
        }
        if t0.elapsed() > CHECK_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Other(format!(
                "{}: did not finish loading and probing within {}s (hangs?)",
                file.display(),
                CHECK_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    if status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason = stderr
        .lines()
        .find_map(|l| l.strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| crash_reason(&status));
    let named = reason.starts_with(&file.display().to_string());
    Err(Error::Other(if named {
        reason
    } else {
        format!("{}: {reason}", file.display())
    }))
}

#[cfg(unix)]
fn crash_reason(s: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match s.signal() {
        Some(sig) => format!(
            "crashed with signal {sig} while loading or probing (the library is unsafe to load)"
        ),
        None => format!("probe failed with exit code {:?}", s.code()),
    }
}

#[cfg(not(unix))]
fn crash_reason(s: &std::process::ExitStatus) -> String {
    format!("probe crashed or failed with exit code {:?}", s.code())
}

/// Loads `file` in this process and calls each plugin once with default
/// parameters on a small layer or schedule state, validating the answers.
/// Returns the report: one line per plugin (`kind name version: ok`).
pub fn probe_library(file: &Path) -> Result<String> {
    let mut report = String::new();
    let plugins = load_library(file)?;
    let fail = |name: &str, msg: String| {
        Error::Other(format!("{}: plugin `{name}`: {msg}", file.display()))
    };
    for p in &plugins {
        match p.kind {
            PluginKind::Criterion => {
                let mut c = p
                    .criterion("{}")
                    .map_err(|e| fail(&p.name, e.to_string()))?;
                let w = [0.5f32, -1.0, 0.25, 2.0, -0.125, 1.5];
                let ones = [1.0f32; 6];
                let norms = [1.0f32, 2.0, 3.0];
                for g in [Granularity::Unstructured, Granularity::StructuredChannel] {
                    let view = LayerView {
                        name: "probe",
                        kind: LayerKind::Linear,
                        shape: &[2, 3],
                        weight: &w,
                        mask: &ones,
                        grad: Some(&w),
                        act_norms: Some(&norms),
                        granularity: g,
                    };
                    let mut out = vec![f32::NAN; view.score_len()];
                    c.score(&view, &mut out)
                        .map_err(|e| fail(&p.name, e.to_string()))?;
                    if let Some(v) = out.iter().find(|v| !v.is_finite()) {
                        return Err(fail(&p.name, format!("returned a non-finite score ({v})")));
                    }
                }
            }
            PluginKind::Schedule => {
                let mut s = p.schedule("{}").map_err(|e| fail(&p.name, e.to_string()))?;
                let state = ScheduleState::start(0.5);
                match s.decide(&state).map_err(|e| fail(&p.name, e.to_string()))? {
                    Decision::Prune { sparsity } if !(0.0..1.0).contains(&sparsity) => {
                        return Err(fail(&p.name, format!("asked for sparsity {sparsity}")))
                    }
                    _ => {}
                }
            }
        }
        let kind = match p.kind {
            PluginKind::Criterion => "criterion",
            PluginKind::Schedule => "schedule",
        };
        report.push_str(&format!("{kind} {} {}: ok\n", p.name, p.version));
    }
    Ok(report)
}
