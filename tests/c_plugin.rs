//! Plugins written in C against `plugin-api/include/shears_plugin.h`: the
//! header matches the Rust ABI byte for byte (as C and as C++), the example
//! library `plugin-api/examples/c/l2_criterion.c` loads, scores, schedules
//! and runs a whole comparison, and its deliberately broken variants (wrong
//! ABI, no entry symbol, NaN scores, a crash on load) are refused or fail
//! cleanly with a message naming the file.
//!
//! The libraries are compiled with the system C compiler (`$CC`, else `cc`).

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use shears::experiment::{ExperimentConfig, Status};
use shears::plugins::{load_library, Origin, Registry, LIBRARY_EXTENSION};
use shears_plugin_api::abi::*;
use shears_plugin_api::testing::score;
use shears_plugin_api::{
    Decision, Granularity, LayerKind, LayerView, Needs, Phase, PluginKind, ScheduleState,
};
use shears_tests::{shears, text, tiny_config};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn include_dir() -> PathBuf {
    repo_root().join("plugin-api/include")
}

fn example_source() -> PathBuf {
    repo_root().join("plugin-api/examples/c/l2_criterion.c")
}

/// A compiler command from `$var` (which may carry arguments, e.g.
/// `ccache cc`) or `default`.
fn compiler_command(var: &str, default: &str) -> Command {
    let spec = std::env::var(var)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_string());
    let mut words = spec.split_whitespace();
    let mut cmd = Command::new(words.next().expect("non-empty compiler"));
    cmd.args(words);
    cmd
}

fn run_compiler(mut cmd: Command) {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler ({shown}): {e}"));
    assert!(
        out.status.success(),
        "compiling failed: {shown}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles the example plugin (with `-D<variant>` if given) to
/// `dir/<stem>.<so>` with the flags the README gives.
fn build_plugin(dir: &Path, stem: &str, variant: Option<&str>) -> PathBuf {
    let out = dir.join(format!("{stem}.{LIBRARY_EXTENSION}"));
    let mut cmd = compiler_command("CC", "cc");
    cmd.args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(include_dir());
    if let Some(v) = variant {
        cmd.arg(format!("-D{v}"));
    }
    cmd.arg(example_source()).arg("-o").arg(&out).arg("-lm");
    run_compiler(cmd);
    out
}

/// A C++ compiler: `$CXX`, else the first of `c++`, `g++`, `clang++` that runs.
fn cxx_compiler() -> Option<Command> {
    if std::env::var("CXX").is_ok_and(|s| !s.trim().is_empty()) {
        return Some(compiler_command("CXX", "c++"));
    }
    ["c++", "g++", "clang++"].into_iter().find_map(|c| {
        let ok = Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Command::new(c))
    })
}

// ---------------------------------------------------------------------------
// The header

/// C code printing the size and field offsets of every struct, and Rust's
/// answer for the same lines.
macro_rules! layout {
    ($($t:ident { $($f:ident),* $(,)? })*) => {{
        let mut c = String::new();
        let mut want = Vec::new();
        $(
            c.push_str(&format!("    S({});\n", stringify!($t)));
            want.push(format!("{}.size {}", stringify!($t), std::mem::size_of::<$t>()));
            $(
                c.push_str(&format!("    F({}, {});\n", stringify!($t), stringify!($f)));
                want.push(format!(
                    "{}.{} {}",
                    stringify!($t),
                    stringify!($f),
                    std::mem::offset_of!($t, $f)
                ));
            )*
        )*
        (c, want)
    }};
}

/// C code printing every `SHEARS_*` constant, and Rust's values.
macro_rules! constants {
    ($($name:ident = $value:expr),* $(,)?) => {{
        let mut c = String::new();
        let mut want = Vec::new();
        $(
            c.push_str(&format!("    K(SHEARS_{});\n", stringify!($name)));
            want.push(format!("SHEARS_{} {}", stringify!($name), i64::from($value)));
        )*
        (c, want)
    }};
}

/// The probe program: prints layout and constants, and defines the entry
/// symbol against the header's declaration (a mismatch fails to compile).
fn layout_program() -> (String, Vec<String>) {
    let (structs, mut want) = layout! {
        ShearsErrorBuf { ptr, cap }
        ShearsLayer {
            name, kind, granularity, shape, rank, weight, mask, len, grad, act_norms, act_len
        }
        ShearsScheduleState {
            prune_steps, last, current_sparsity, target_sparsity, epochs_spent,
            val_acc_history, history_len
        }
        ShearsDecision { kind, sparsity, max_epochs, patience }
        ShearsPlugin {
            kind, name, version, description, params_schema, create, destroy, needs, score, decide
        }
        ShearsPluginList { abi_version, count, plugins }
    };
    let (consts, want_consts) = constants! {
        ABI_VERSION = shears_plugin_api::ABI_VERSION,
        STATUS_OK = STATUS_OK,
        STATUS_ERROR = STATUS_ERROR,
        STATUS_PANIC = STATUS_PANIC,
        KIND_CRITERION = KIND_CRITERION,
        KIND_SCHEDULE = KIND_SCHEDULE,
        LAYER_LINEAR = LAYER_LINEAR,
        LAYER_CONV2D = LAYER_CONV2D,
        GRANULARITY_UNSTRUCTURED = GRANULARITY_UNSTRUCTURED,
        GRANULARITY_STRUCTURED_CHANNEL = GRANULARITY_STRUCTURED_CHANNEL,
        NEEDS_GRADIENT = NEEDS_GRADIENT,
        NEEDS_ACTIVATIONS = NEEDS_ACTIVATIONS,
        PHASE_START = PHASE_START,
        PHASE_PRUNED = PHASE_PRUNED,
        PHASE_FINETUNED = PHASE_FINETUNED,
        DECISION_STOP = DECISION_STOP,
        DECISION_PRUNE = DECISION_PRUNE,
        DECISION_FINETUNE = DECISION_FINETUNE,
    };
    want.extend(want_consts);
    want.push(format!("SHEARS_ENTRY_SYMBOL {ENTRY_SYMBOL}"));
    let src = format!(
        r#"#include <stddef.h>
#include <stdio.h>
#include "shears_plugin.h"

#define S(T) printf("%s.size %zu\n", #T, sizeof(T))
#define F(T, f) printf("%s.%s %zu\n", #T, #f, (size_t)offsetof(T, f))
#define K(c) printf("%s %lld\n", #c, (long long)(c))

/* Must match the header's declaration and the entry function type. */
const ShearsPluginList *shears_plugin_v1(void) {{ return NULL; }}

/* The function typedefs accept functions of the documented signatures. */
static int32_t create(const char *p, void **o, ShearsErrorBuf e) {{ (void)p; (void)o; (void)e; return SHEARS_STATUS_OK; }}
static void destroy(void *i) {{ (void)i; }}
static uint32_t needs(void *i) {{ (void)i; return 0; }}
static int32_t score(void *i, const ShearsLayer *l, float *o, size_t n, ShearsErrorBuf e) {{ (void)i; (void)l; (void)o; (void)n; (void)e; return SHEARS_STATUS_OK; }}
static int32_t decide(void *i, const ShearsScheduleState *s, ShearsDecision *o, ShearsErrorBuf e) {{ (void)i; (void)s; (void)o; (void)e; return SHEARS_STATUS_OK; }}

int main(void) {{
    ShearsEntryFn entry = shears_plugin_v1;
    ShearsPlugin p = {{ SHEARS_KIND_CRITERION, "n", "v", "d", "{{}}", create, destroy, needs, score, decide }};
    if (entry() != NULL || p.create == NULL) {{
        return 1;
    }}
{structs}{consts}    printf("SHEARS_ENTRY_SYMBOL %s\n", SHEARS_ENTRY_SYMBOL);
    return 0;
}}
"#
    );
    (src, want)
}

/// Compiles `src` (as `file`, whose extension picks the language) with
/// `cmd` and strict warnings, runs it and checks its output is `want`.
fn check_layout_program(mut cmd: Command, dir: &Path, file: &str, src: &str, want: &[String]) {
    let path = dir.join(file);
    std::fs::write(&path, src).unwrap();
    let exe = dir.join(format!("{file}.bin"));
    cmd.args(["-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(include_dir())
        .arg(&path)
        .arg("-o")
        .arg(&exe);
    run_compiler(cmd);
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success(), "{file}: the probe program failed");
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got, want, "{file}: the header differs from abi.rs");
}

#[test]
fn header_compiles_as_c_and_cpp_and_matches_the_rust_abi() {
    let dir = tempfile::tempdir().unwrap();
    let (src, want) = layout_program();
    let mut c = compiler_command("CC", "cc");
    c.arg("-std=c99");
    check_layout_program(c, dir.path(), "layout.c", &src, &want);
    match cxx_compiler() {
        Some(mut cxx) => {
            cxx.arg("-std=c++11");
            check_layout_program(cxx, dir.path(), "layout.cpp", &src, &want);
        }
        None => eprintln!(
            "skipping the C++ half: no C++ compiler found ($CXX unset; c++, g++, clang++ not runnable)"
        ),
    }
}

// ---------------------------------------------------------------------------
// The example plugin

fn view<'a>(
    kind: LayerKind,
    shape: &'a [usize],
    w: &'a [f32],
    mask: &'a [f32],
    g: Granularity,
) -> LayerView<'a> {
    LayerView {
        name: "layer",
        kind,
        shape,
        weight: w,
        mask,
        grad: None,
        act_norms: None,
        granularity: g,
    }
}

/// Channel L2 norms computed in Rust the way the C plugin does (f64 sums).
fn channel_norms(w: &[f32], out: usize) -> Vec<f32> {
    w.chunks(w.len() / out)
        .map(|c| {
            c.iter()
                .fold(0.0f64, |s, &x| s + f64::from(x) * f64::from(x))
                .sqrt() as f32
        })
        .collect()
}

/// Drives `schedule` as the host does and returns every decision, Stop last.
fn drive(s: &mut dyn shears_plugin_api::Schedule, target: f32) -> Vec<Decision> {
    let mut state_history: Vec<f32> = Vec::new();
    let (mut prune_steps, mut last, mut current, mut epochs) = (0, Phase::Start, 0.0f32, 0);
    let mut decisions = Vec::new();
    for _ in 0..20 {
        let state = ScheduleState {
            prune_steps,
            last,
            current_sparsity: current,
            target_sparsity: target,
            epochs_spent: epochs,
            val_acc_history: &state_history,
        };
        let d = s.decide(&state).expect("decide");
        decisions.push(d);
        match d {
            Decision::Prune { sparsity } => {
                prune_steps += 1;
                last = Phase::Pruned;
                current = sparsity;
            }
            Decision::FineTune { max_epochs, .. } => {
                epochs += max_epochs;
                last = Phase::FineTuned;
                state_history.resize(state_history.len() + max_epochs as usize, 0.5);
            }
            Decision::Stop => return decisions,
        }
    }
    panic!("the schedule did not stop: {decisions:?}");
}

#[test]
fn c_plugins_load_score_and_schedule_through_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_plugin(dir.path(), "libc_l2", None);
    let mut reg = Registry::builtin();
    assert_eq!(reg.add_library(&lib), Ok(2));
    assert!(reg.errors().is_empty());
    let entry = reg
        .entries()
        .iter()
        .find(|e| e.name == "c-l2")
        .expect("c-l2 registered");
    assert_eq!(entry.kind, PluginKind::Criterion);
    assert_eq!(entry.version, "0.1.0");
    assert_eq!(entry.origin, Origin::Library(lib.clone()));
    assert_eq!(
        entry.params_schema,
        r#"{"type":"object","properties":{},"additionalProperties":false}"#
    );
    assert!(reg.schedule_names().contains(&"c-two-step"));

    // criterion: exact squares and channel norms
    let mut c = reg.criterion("c-l2", &json!({})).expect("create c-l2");
    assert_eq!(c.needs(), Needs::default());
    let w = [3.0f32, -4.0, 0.0, 0.5, -1.25, 2.0];
    let ones = [1.0f32; 6];
    let lin = |g| view(LayerKind::Linear, &[2, 3], &w, &ones, g);
    let squares: Vec<f32> = w.iter().map(|x| x * x).collect();
    assert_eq!(score(c.as_mut(), &lin(Granularity::Unstructured)), squares);
    let norms = score(c.as_mut(), &lin(Granularity::StructuredChannel));
    assert_eq!(norms[0], 5.0);
    assert_eq!(norms, channel_norms(&w, 2));
    // a conv layer [out 3, in 2, kh 1, kw 2]: fan-in 4 per channel
    let cw: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.3).collect();
    let cones = [1.0f32; 12];
    let conv = view(
        LayerKind::Conv2d,
        &[3, 2, 1, 2],
        &cw,
        &cones,
        Granularity::StructuredChannel,
    );
    assert_eq!(score(c.as_mut(), &conv), channel_norms(&cw, 3));
    // the plugin checks the buffer length itself too
    let mut short = vec![0.0f32; 5];
    let e = c
        .score(&lin(Granularity::Unstructured), &mut short)
        .unwrap_err();
    // the host refuses before the plugin could read past the buffer
    assert!(e.0.contains("do not match the shape"), "{e}");

    // invalid parameters: an error naming the plugin, the file and the key
    // (refused by the host's schema check or by the plugin itself)
    let e = reg
        .criterion("c-l2", &json!({"x": 1}))
        .err()
        .expect("{\"x\":1} is refused")
        .to_string();
    assert!(e.contains("c-l2") && e.contains('x'), "{e}");
    assert!(e.contains(&lib.display().to_string()), "{e}");
    let e = reg
        .schedule("c-two-step", &json!({"steps": 3}))
        .err()
        .expect("schedule parameters are refused")
        .to_string();
    assert!(e.contains("c-two-step") && e.contains("steps"), "{e}");
    // "", whitespace and "{ }" are the defaults; anything else is refused
    let loaded = load_library(&lib).unwrap();
    let crit = loaded.iter().find(|p| p.name == "c-l2").unwrap();
    for ok in ["", "  \n", "{}", " { } "] {
        assert!(crit.criterion(ok).is_ok(), "{ok:?} refused");
    }
    for bad in ["[]", "{", "{}x", "null", r#"{"x":1}"#] {
        let e = crit.criterion(bad).err().expect("refused");
        assert!(
            e.0.starts_with("c-l2 takes no parameters") && e.0.contains(bad),
            "{bad:?}: {e}"
        );
    }

    // schedule: half, fine-tune, full, fine-tune, stop
    let mut s = reg.schedule("c-two-step", &json!({})).expect("create");
    let ft = Decision::FineTune {
        max_epochs: 1,
        patience: 0,
    };
    assert_eq!(
        drive(s.as_mut(), 0.8),
        vec![
            Decision::Prune { sparsity: 0.4 },
            ft,
            Decision::Prune { sparsity: 0.8 },
            ft,
            Decision::Stop
        ]
    );
    let mut s = reg.schedule("c-two-step", &json!({})).expect("create");
    assert_eq!(drive(s.as_mut(), 0.0), vec![Decision::Stop]);
}

fn config(strategies: &str) -> ExperimentConfig {
    ExperimentConfig::from_toml(&tiny_config(strategies), Path::new("tiny.toml")).unwrap()
}

#[test]
fn a_comparison_runs_with_the_c_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_plugin(dir.path(), "libc_l2", None);
    let mut reg = Registry::builtin();
    reg.add_library(&lib).expect("load");
    let cfg = config(
        "[[strategy]]\nschedule = \"c-two-step\"\ncriterion = \"c-l2\"\n\
         [[strategy]]\nname = \"c-structured\"\nschedule = \"one-shot\"\ncriterion = \"c-l2\"\n\
         granularity = \"structured\"\nscope = \"layer\"\n",
    );
    let (r, _) = shears_tests::run_collecting(&cfg, &reg);
    assert_eq!(r.status, Some(Status::Complete));
    assert_eq!(r.runs.len(), 2 * cfg.sparsities.len());
    for run in &r.runs {
        shears_tests::assert_reached_target(run, run.strategy == "c-structured");
        if run.strategy != "c-structured" {
            assert_eq!(run.strategy, "c-two-step/c-l2");
            let targets: Vec<f32> = run.steps.iter().map(|s| s.target_sparsity).collect();
            assert_eq!(targets, vec![run.target / 2.0, run.target], "{targets:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Broken plugins

#[test]
fn wrong_abi_missing_entry_and_non_libraries_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = build_plugin(dir.path(), "libwrong_abi", Some("SHEARS_TEST_WRONG_ABI"));
    let no_entry = build_plugin(dir.path(), "libno_entry", Some("SHEARS_TEST_NO_ENTRY"));
    let text_file = dir.path().join(format!("x.{LIBRARY_EXTENSION}"));
    std::fs::write(&text_file, "this is not a shared library\n").unwrap();

    let mut reg = Registry::builtin();
    let builtin = reg.entries().len();
    use shears::plugins::LibraryError as E;
    type Kind = fn(&E) -> bool;
    let cases: [(&Path, &[&str], Kind); 3] = [
        (&wrong, &["ABI version 2", "expects 1"], |e| {
            matches!(e, E::Version { found: 2, .. })
        }),
        (&no_entry, &["shears_plugin_v1"], |e| {
            matches!(e, E::Symbol { .. })
        }),
        (&text_file, &["not a loadable shared library"], |e| {
            matches!(e, E::Open { .. })
        }),
    ];
    for (path, needles, kind) in cases {
        let e = reg.add_library(path).unwrap_err();
        assert!(kind(&e), "{e:?}");
        let e = e.to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        for n in needles {
            assert!(e.contains(n), "`{n}` missing from `{e}`");
        }
        assert!(!e.contains('\n'), "one line: {e}");
    }
    assert_eq!(reg.entries().len(), builtin, "nothing of them was added");
    assert_eq!(reg.errors().len(), 3);
    let rows = reg.rows();
    assert!(rows
        .iter()
        .any(|r| r.name == format!("libwrong_abi.{LIBRARY_EXTENSION}")
            && r.status.contains("ABI version 2")));
    // a good library still loads into the same registry afterwards
    let good = build_plugin(dir.path(), "libc_l2", None);
    assert_eq!(reg.add_library(&good), Ok(2));
}

#[test]
fn short_variant_rejects_a_wrong_buffer_length() {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_plugin(dir.path(), "libshort", Some("SHEARS_TEST_SHORT"));
    let mut reg = Registry::builtin();
    reg.add_library(&lib).unwrap();
    let mut c = reg.criterion("c-l2", &json!({})).unwrap();
    let w = [1.0f32, 2.0, 3.0, 4.0];
    let v = view(
        LayerKind::Linear,
        &[2, 2],
        &w,
        &w,
        Granularity::StructuredChannel,
    );
    // a wrong length never reaches the plugin: the host checks it first
    let mut out = vec![0.0f32; 1];
    assert!(c
        .score(&v, &mut out)
        .unwrap_err()
        .0
        .contains("do not match the shape"));
    let mut out = vec![0.0f32; 2];
    c.score(&v, &mut out).unwrap();
    assert_eq!(out, channel_norms(&w, 2));
}

#[test]
fn nan_scores_fail_their_run_only() {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_plugin(dir.path(), "libnan", Some("SHEARS_TEST_NAN"));
    let mut reg = Registry::builtin();
    reg.add_library(&lib).unwrap();
    let mut cfg = config(
        "[[strategy]]\nschedule = \"one-shot\"\ncriterion = \"c-l2\"\n\
         [[strategy]]\nschedule = \"c-two-step\"\ncriterion = \"magnitude\"\n",
    );
    cfg.sparsities = vec![0.5];
    let (r, _) = shears_tests::run_collecting(&cfg, &reg);
    let status = |label: &str| {
        r.runs
            .iter()
            .find(|x| x.strategy == label)
            .unwrap_or_else(|| panic!("no run {label}"))
            .status
            .clone()
    };
    match status("one-shot/c-l2") {
        Status::Failed(m) => assert!(m.contains("NaN") && m.contains("c-l2"), "{m}"),
        s => panic!("one-shot/c-l2: {s:?}"),
    }
    // the same library's schedule, with a sound criterion, completes
    assert_eq!(status("c-two-step/magnitude"), Status::Complete);
}

#[test]
fn a_library_crashing_on_load_is_reported_by_check_and_never_loaded_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let bad_dir = dir.path().join("bad");
    let good_dir = dir.path().join("good");
    std::fs::create_dir_all(&bad_dir).unwrap();
    std::fs::create_dir_all(&good_dir).unwrap();
    let crash = build_plugin(&bad_dir, "libcrash", Some("SHEARS_TEST_SEGFAULT_ON_LOAD"));
    let good = build_plugin(&good_dir, "libc_l2", None);

    // `check` loads it in a child process: a clean error, not a crash
    let o = shears(
        dir.path(),
        &["plugins", "check", &crash.display().to_string()],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(o.status.code().is_some(), "shears itself crashed\n{t}");
    assert!(t.contains("signal 11") || t.contains("crashed"), "{t}");
    assert!(t.contains(&crash.display().to_string()), "{t}");
    assert!(!t.contains("panicked"), "{t}");

    // the good library checks fine and is listed from --plugins
    let o = shears(
        dir.path(),
        &["plugins", "check", &good.display().to_string()],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("c-l2") && t.contains("c-two-step"), "{t}");
    let o = shears(
        dir.path(),
        &[
            "--plugins",
            &good_dir.display().to_string(),
            "plugins",
            "list",
        ],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    for name in ["c-l2", "c-two-step"] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed\n{t}"));
        assert!(
            line.contains(" ok ") && line.contains(&good.display().to_string()),
            "{line}"
        );
    }
    assert!(stdout.contains("magnitude"), "built-ins listed too\n{t}");
}
