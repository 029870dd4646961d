//! The `shears` binary end to end: a comparison with its outputs, the
//! train/prune/eval/inspect chain, and bad input of every kind giving a clear
//! one-line error, a non-zero exit code and no panic.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shears_tests::{shears, shears_bin, text, tiny_config};

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

/// Writes the tiny config with one one-shot strategy to `dir/c.toml`.
fn one_shot_config(dir: &Path) -> String {
    write(
        dir,
        "c.toml",
        &tiny_config("[[strategy]]\nschedule = \"one-shot\"\n"),
    )
}

fn assert_clean_error(o: &std::process::Output, needles: &[&str]) {
    let t = text(o);
    assert!(!o.status.success(), "expected failure\n{t}");
    assert!(!t.contains("panicked"), "panic\n{t}");
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line\n{t}"));
    for n in needles {
        assert!(line.contains(n), "`{n}` missing from `{line}`");
    }
}

#[test]
fn compare_writes_events_results_and_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "c.toml",
        &tiny_config("[[strategy]]\nname = \"one-shot\"\nschedule = \"one-shot\"\n[[strategy]]\nname = \"geometric\"\nschedule = \"iterative-geometric\"\n"),
    );
    let o = shears(
        dir.path(),
        &["compare", "--config", &cfg, "--out", "out", "--quiet"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("dense baseline")
            && stdout.contains("geometric")
            && stdout.contains("90.0% sparse"),
        "{stdout}"
    );
    let out = dir.path().join("out");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["runs"].as_array().unwrap().len(), 4);
    assert_eq!(results["status"]["status"], "complete");
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    let kinds: Vec<String> = events
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for k in [
        "started",
        "epoch",
        "base-ready",
        "run-started",
        "pruned",
        "step",
        "run-finished",
        "finished",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no `{k}` event in {kinds:?}");
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.starts_with("strategy,schedule,criterion,target"));
    assert!(csv.lines().count() >= 1 + 1 + 4);
    assert!(out.join("base-seed0.safetensors").exists());
    // the dense controls, the cost and latency columns, and the tables
    assert_eq!(results["controls"].as_array().unwrap().len(), 2);
    assert!(kinds.iter().any(|x| x == "control-finished"));
    let header = csv.lines().next().unwrap();
    for col in [
        "pruned_test_acc",
        "compression",
        "speedup",
        "latency_b64_ms",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(csv.contains("\ndense control,"));
    assert!(
        stdout.contains("dense control") && stdout.contains("right after prune"),
        "{stdout}"
    );
    // the flags that switch them off, and the equal budget
    let o = shears(
        dir.path(),
        &[
            "compare",
            "--config",
            &cfg,
            "--out",
            "out2",
            "--quiet",
            "--no-dense-control",
            "--no-latency",
            "--finetune-budget",
            "3",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out2/results.json")).unwrap(),
    )
    .unwrap();
    assert!(r.get("controls").is_none());
    for run in r["runs"].as_array().unwrap() {
        assert!(run.get("latency").is_none());
        assert_eq!(
            run["steps"].as_array().unwrap().last().unwrap()["epochs"],
            3
        );
    }
    // the saved base model opens with `inspect`
    let o = shears(dir.path(), &["inspect", "out/base-seed0.safetensors"]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("fc1"),
        "{}",
        text(&o)
    );
}

/// The UCI digits CSV of ../shared and `shears train` of `model` for `epochs`
/// on it into `dir/m.safetensors`.
fn train_on_digits(dir: &Path, model: &str, epochs: &str) -> (String, std::process::Output) {
    let digits = shears_tests::shared_datasets().join("uci-digits/digits.csv.gz");
    let d = digits.display().to_string();
    let args = [
        "train",
        "--data",
        &d,
        "--model",
        model,
        "--epochs",
        epochs,
        "--out",
        "m.safetensors",
    ];
    let o = shears(dir, &args);
    (d, o)
}

#[test]
fn train_prune_eval_inspect_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (_, o) = train_on_digits(dir.path(), "alexnet", "1");
    // an unknown architecture: a clear error, not a panic
    assert_clean_error(&o, &["alexnet"]);
    let (d, o) = train_on_digits(dir.path(), "mlp", "2");
    assert!(o.status.success(), "{}", text(&o));
    let o = shears(
        dir.path(),
        &[
            "prune",
            "--checkpoint",
            "m.safetensors",
            "--data",
            &d,
            "--sparsity",
            "0.5",
            "--granularity",
            "structured",
            "--compact",
            "--finetune-epochs",
            "1",
            "--out",
            "p.safetensors",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("compacted"),
        "{}",
        text(&o)
    );
    // The granularity as the flag spells it (issue 27, item 13).
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(structured)"),
        "{}",
        text(&o)
    );
    let o = shears(
        dir.path(),
        &["eval", "--checkpoint", "p.safetensors", "--data", &d],
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("test accuracy"),
        "{}",
        text(&o)
    );
    let o = shears(
        dir.path(),
        &[
            "prune",
            "--checkpoint",
            "m.safetensors",
            "--sparsity",
            "0.8",
            "--out",
            "u.safetensors",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = shears(dir.path(), &["inspect", "u.safetensors"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && s.contains("sparsity 80.00%") && s.contains("fc2"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_config_keys_and_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "bad.toml",
        &tiny_config("sparsitiez = 3\n[[strategy]]\nschedule = \"one-shot\"\n"),
    );
    assert_clean_error(
        &shears(dir.path(), &["compare", "--config", &cfg]),
        &["bad.toml", "sparsitiez"],
    );
    let cfg = write(
        dir.path(),
        "bad2.toml",
        &tiny_config(
            "[[strategy]]\nschedule = \"one-shot\"\nschedule_params = { finetune_epochs = -3 }\n",
        ),
    );
    assert_clean_error(
        &shears(dir.path(), &["compare", "--config", &cfg]),
        &["strategy[0].schedule"],
    );
    let cfg = write(
        dir.path(),
        "bad3.toml",
        &tiny_config("[[strategy]]\nschedule = \"one-shot\"\ncriterion = \"magic\"\n"),
    );
    assert_clean_error(
        &shears(dir.path(), &["compare", "--config", &cfg]),
        &["strategy[0].criterion", "magic"],
    );
    assert_clean_error(
        &shears(dir.path(), &["compare", "--config", "missing.toml"]),
        &["missing.toml"],
    );
    let cfg = write(
        dir.path(),
        "ok.toml",
        &tiny_config("[[strategy]]\nschedule = \"one-shot\"\n"),
    );
    assert_clean_error(
        &shears(
            dir.path(),
            &["compare", "--config", &cfg, "--sparsities", "0.5,1.5"],
        ),
        &["sparsities[1]"],
    );
}

#[test]
fn corrupt_datasets_and_checkpoints_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = shears_tests::shared_datasets().join("mnist-10k");
    let bad = dir.path().join("mnist");
    std::fs::create_dir(&bad).unwrap();
    for f in [
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(mnist.join(f), bad.join(f)).unwrap();
    }
    let img = std::fs::read(mnist.join("train-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(
        bad.join("train-images-idx3-ubyte.gz"),
        &img[..img.len() / 3],
    )
    .unwrap();
    let cfg = one_shot_config(dir.path());
    let o = shears(
        dir.path(),
        &["compare", "--config", &cfg, "--data", bad.to_str().unwrap()],
    );
    assert_clean_error(&o, &["train-images-idx3-ubyte.gz"]);

    std::fs::write(
        dir.path().join("junk.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json",
    )
    .unwrap();
    assert_clean_error(
        &shears(dir.path(), &["inspect", "junk.safetensors"]),
        &["junk.safetensors"],
    );
    assert_clean_error(
        &shears(dir.path(), &["inspect", "nothing.safetensors"]),
        &["nothing.safetensors"],
    );
}

#[test]
fn nan_weights_fail_runs_but_keep_results() {
    use candle_core::{Device, Tensor};
    use shears::model::{checkpoint, ModelSpec, Network};
    let dir = tempfile::tempdir().unwrap();
    let arch = ModelSpec::Mlp { hidden: vec![16] }
        .build([1, 28, 28], 10)
        .unwrap();
    let net = Network::new(arch, 0, &Device::Cpu).unwrap();
    let w = &net.params["fc1.weight"];
    w.set(&Tensor::full(f32::NAN, w.dims(), &Device::Cpu).unwrap())
        .unwrap();
    checkpoint::save(
        &net,
        &serde_json::Value::Null,
        &dir.path().join("nan.safetensors"),
    )
    .unwrap();
    let cfg = one_shot_config(dir.path());
    let o = shears(
        dir.path(),
        &[
            "compare",
            "--config",
            &cfg,
            "--base",
            "nan.safetensors",
            "--out",
            "out",
            "--quiet",
        ],
    );
    assert!(
        !o.status.success() && !text(&o).contains("panicked"),
        "{}",
        text(&o)
    );
    let results = std::fs::read_to_string(dir.path().join("out/results.json")).unwrap();
    assert!(results.contains("diverged"), "{results}");
}

#[test]
fn interrupt_stops_cleanly_and_keeps_finished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "c.toml",
        &tiny_config("[[strategy]]\nschedule = \"patience\"\nschedule_params = { steps = 20, patience = 5, max_epochs = 20 }\n")
            .replace("sparsities = [0.5, 0.9]", "sparsities = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95]"),
    );
    let mut child = Command::new(shears_bin())
        .args(["compare", "--config", &cfg, "--out", "out", "--quiet"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let events = dir.path().join("out/events.jsonl");
    let t0 = Instant::now();
    while !std::fs::read_to_string(&events)
        .unwrap_or_default()
        .contains("\"run-finished\"")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no run finished in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t1 = Instant::now();
    let out = loop {
        if let Some(_s) = child.try_wait().unwrap() {
            break child.wait_with_output().unwrap();
        }
        assert!(
            t1.elapsed() < Duration::from_secs(60),
            "did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/results.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(results["status"]["status"], "cancelled");
    let runs = results["runs"].as_array().unwrap();
    assert!(
        runs.iter().any(|r| r["status"]["status"] == "complete"),
        "{runs:?}"
    );
    assert!(runs.len() < 6);
}

/// Width, height and whether `file` is a PNG with more than one colour.
fn png_facts(file: &Path) -> (u32, u32, bool) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let first = &px[..step];
    let varied = px.chunks(step).any(|p| p != first);
    (info.width, info.height, varied)
}

/// `compare --charts` and `report --charts` write each Compare chart as SVG
/// and PNG; `report` prints the tables `compare` prints; charts that cannot
/// be written are a clear error and the results stay saved.
#[test]
fn charts_are_written_by_compare_and_by_report() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = one_shot_config(dir.path());
    let o = shears(
        dir.path(),
        &[
            "compare", "--config", &cfg, "--out", "out", "--quiet", "--charts", "c1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let tables = String::from_utf8_lossy(&o.stdout);
    let table = &tables[..tables.find("results: ").expect("a results line")];
    let ids = [
        "accuracy-vs-sparsity",
        "per-layer-sparsity",
        "accuracy-vs-compute",
    ];
    for id in ids {
        assert!(dir.path().join(format!("c1/{id}.svg")).is_file(), "{id}");
    }
    let o = shears(
        dir.path(),
        &[
            "report",
            "out",
            "--charts",
            "c2",
            "--target",
            "0.5",
            "--compute-axis",
            "seconds",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.starts_with(table),
        "the same tables\n{stdout}\n---\n{table}"
    );
    assert!(stdout.contains("charts: 6 files in c2"), "{stdout}");
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/results.json")).unwrap(),
    )
    .unwrap();
    let strategy = results["runs"][0]["strategy"].as_str().unwrap().to_string();
    for id in ids {
        let svg = std::fs::read_to_string(dir.path().join(format!("c2/{id}.svg"))).unwrap();
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        assert!(
            svg.contains(&format!(">{strategy}</text>")),
            "{id}: no legend entry `{strategy}`\n{svg}"
        );
        let (w, h, varied) = png_facts(&dir.path().join(format!("c2/{id}.png")));
        assert_eq!(w, 1800, "{id}: 900 units at 2 pixels each");
        assert!(h >= 880 && varied, "{id}: {w}x{h}");
    }
    let svg = std::fs::read_to_string(dir.path().join("c2/accuracy-vs-compute.svg")).unwrap();
    assert!(svg.contains("at target 50.0%") && svg.contains("seconds spent"));
    // results.json given directly works too.
    let o = shears(dir.path(), &["report", "out/results.json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(table));
    // A file where the charts folder should be: the error names it.
    std::fs::write(dir.path().join("taken"), b"x").unwrap();
    let o = shears(dir.path(), &["report", "out", "--charts", "taken/charts"]);
    assert_clean_error(&o, &["taken"]);
    let o = shears(
        dir.path(),
        &[
            "compare", "--config", &cfg, "--out", "out2", "--quiet", "--charts", "taken",
        ],
    );
    assert_clean_error(&o, &["taken"]);
    let saved = std::fs::read_to_string(dir.path().join("out2/results.json")).unwrap();
    assert!(saved.contains("\"complete\""), "results kept: {saved}");
    // Not a results folder.
    let o = shears(dir.path(), &["report", "c1"]);
    assert_clean_error(&o, &["c1", "results.json"]);
}

#[test]
fn schedule_prints_the_sparsities_a_schedule_takes() {
    let dir = tempfile::tempdir().unwrap();
    // The paper's few-shot schedule: 0.5, then 1 - 0.55^(i/3) on top.
    let o = shears(
        dir.path(),
        &[
            "schedule",
            "hybrid",
            "--target",
            "0.95",
            "--params",
            r#"{"initial": 0.5, "steps": 3}"#,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "0.500000",
        "0.680679",
        "0.828713",
        "0.950000",
        "(4 steps, 4 fine-tuning epochs)",
    ] {
        assert!(out.contains(want), "`{want}` missing\n{out}");
    }
    let o = shears(
        dir.path(),
        &[
            "schedule",
            "iterative-geometric",
            "--target",
            "0.9",
            "--params",
            r#"{"steps": 2}"#,
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("0.683772") && out.contains("0.900000"),
        "{out}"
    );
    assert_clean_error(
        &shears(dir.path(), &["schedule", "nope", "--target", "0.5"]),
        &["nope", "one-shot"],
    );
    assert_clean_error(
        &shears(
            dir.path(),
            &["schedule", "hybrid", "--target", "0.5", "--params", "{"],
        ),
        &["--params"],
    );
    assert_clean_error(
        &shears(dir.path(), &["schedule", "hybrid", "--target", "1.5"]),
        &["hybrid", "1.5"],
    );
}

#[test]
fn sensitivity_prunes_one_layer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (d, o) = train_on_digits(dir.path(), "mlp", "3");
    assert!(o.status.success(), "{}", text(&o));
    let args = ["sensitivity", "--checkpoint", "m.safetensors", "--data", &d];
    let o = shears(
        dir.path(),
        &[&args[..], &["--sparsities", "0,0.5,0.99", "--out", "s"]].concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s/sensitivity.json")).unwrap())
            .unwrap();
    let layers = r["layers"].as_array().unwrap();
    assert!(layers.len() >= 2, "{r}");
    let dense = r["dense_acc"].as_f64().unwrap();
    for l in layers {
        let acc: Vec<f64> = l["test_acc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(acc.len(), 3);
        assert_eq!(acc[0], dense, "sparsity 0 is the dense model");
        assert!(acc[2] < dense, "{l}");
    }
    let csv = std::fs::read_to_string(dir.path().join("s/sensitivity.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * layers.len());
    assert!(String::from_utf8_lossy(&o.stdout).contains("dense test accuracy"));
    assert_clean_error(
        &shears(dir.path(), &[&args[..], &["--sparsities", "1.5"]].concat()),
        &["sparsities", "1.5"],
    );
    assert_clean_error(
        &shears(
            dir.path(),
            &[&args[..], &["--granularity", "diagonal"]].concat(),
        ),
        &["--granularity", "diagonal"],
    );
    assert_clean_error(
        &shears(
            dir.path(),
            &["sensitivity", "--checkpoint", "missing.safetensors"],
        ),
        &["missing.safetensors"],
    );
}

/// A NumPy archive (Keras layout) is data a comparison runs on, from the
/// config's `kind = "npz"`; its images reach the model exactly as saved.
#[test]
fn a_numpy_archive_is_data_for_a_comparison() {
    use candle_core::{DType, Device, Tensor};
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = shears::data::embedded_glyphs(300, 100, 0);
    let images = |d: &shears::data::Dataset| {
        Tensor::from_vec(
            d.images.to_f32(),
            (d.len(), d.channels, d.height, d.width),
            &Device::Cpu,
        )
        .unwrap()
    };
    let labels = |d: &shears::data::Dataset| {
        Tensor::from_vec(
            d.labels.iter().map(|&l| i64::from(l)).collect::<Vec<_>>(),
            d.len(),
            &Device::Cpu,
        )
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap()
    };
    let npz = dir.path().join("glyphs.npz");
    Tensor::write_npz(
        &[
            ("x_train", &images(&train)),
            ("y_train", &labels(&train)),
            ("x_test", &images(&test)),
            ("y_test", &labels(&test)),
        ],
        &npz,
    )
    .unwrap();
    let spec = shears::data::DatasetSpec::detect(&npz).unwrap();
    let (tr, te) = spec.load().unwrap();
    assert_eq!(tr.images, train.images, "pixels as saved");
    assert_eq!(
        (tr.labels.clone(), te.labels.clone()),
        (train.labels, test.labels)
    );
    let cfg = tiny_config("[[strategy]]\nschedule = \"one-shot\"\ncriterion = \"magnitude\"\n")
        .replace(
            "kind = \"embedded\"\ntrain = 600\ntest = 200",
            "kind = \"npz\"\npath = \"glyphs.npz\"",
        );
    assert!(cfg.contains("npz"), "{cfg}");
    let cfg = write(dir.path(), "npz.toml", &cfg);
    let o = shears(
        dir.path(),
        &["compare", "--config", &cfg, "--out", "out", "--quiet"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = shears::experiment::load_results(&dir.path().join("out")).unwrap();
    assert_eq!(r.data.name, "glyphs");
    assert_eq!(r.data.train + r.data.val, 300);
    assert_eq!(r.data.test, 100);
}

/// A comparison starts from a PyTorch nn.Sequential given on the command
/// line with its layers and normalisation; its results say so and its
/// saved models carry the normalisation.
#[test]
fn a_comparison_starts_from_a_pytorch_state_dict() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = one_shot_config(dir.path());
    let mlp = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/torchvision/mlp.pth");
    let digits = shears_tests::shared_datasets().join("uci-digits/digits.csv.gz");
    let (mlp, digits) = (mlp.display().to_string(), digits.display().to_string());
    let args = [
        "compare",
        "--config",
        &cfg,
        "--out",
        "out",
        "--quiet",
        "--base",
        &mlp,
        "--data",
        &digits,
        "--layers",
        "flatten, linear, relu, linear",
        "--mean",
        "0.25",
        "--std",
        "0.3",
    ];
    let o = shears(dir.path(), &args);
    assert!(o.status.success(), "{}", text(&o));
    let r = shears::experiment::load_results(&dir.path().join("out")).unwrap();
    assert_eq!(r.model.family, "sequential");
    assert_eq!(
        r.config.import.layers.as_deref(),
        Some("flatten, linear, relu, linear")
    );
    assert!(
        r.runs
            .iter()
            .all(|run| run.status == shears::experiment::Status::Complete),
        "{:?}",
        r.runs
    );
    let file = r.runs[0].model_file.as_ref().expect("a saved model");
    let saved =
        shears::model::checkpoint::Checkpoint::read(&dir.path().join("out").join(file)).unwrap();
    assert_eq!(
        saved.arch.preprocess.norm,
        shears::model::NormChoice::Fixed {
            mean: vec![0.25],
            std: vec![0.3]
        }
    );
    // A model trained here takes a fixed normalisation too, and keeps it.
    let o = shears(
        dir.path(),
        &[
            "compare", "--config", &cfg, "--out", "own", "--quiet", "--mean", "0.5", "--std",
            "0.25",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = shears::experiment::load_results(&dir.path().join("own")).unwrap();
    let base = r.baselines[0]
        .model_file
        .as_ref()
        .expect("a saved base model");
    let saved =
        shears::model::checkpoint::Checkpoint::read(&dir.path().join("own").join(base)).unwrap();
    assert_eq!(
        saved.arch.preprocess.norm,
        shears::model::NormChoice::Fixed {
            mean: vec![0.5],
            std: vec![0.25]
        }
    );
    // Without the layers it stops before training, saying what to give.
    let o = shears(dir.path(), &args[..args.len() - 6]);
    assert_clean_error(&o, &["mlp.pth", "--layers"]);
}

/// ONNX in and out on the command line: `inspect` says what was assumed,
/// `prune --out x.onnx` writes ONNX that opens again.
#[test]
fn onnx_models_are_inspected_pruned_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let folded =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/torchvision/resnet18_folded.onnx");
    let folded = folded.display().to_string();
    let o = shears(dir.path(), &["inspect", &folded, "--input", "3x32x32"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("folded") && t.contains("conv1") && t.contains("10 classes"),
        "{t}"
    );
    let o = shears(
        dir.path(),
        &[
            "prune",
            "--checkpoint",
            &folded,
            "--input",
            "3x32x32",
            "--sparsity",
            "0.5",
            "--out",
            "small.onnx",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ONNX"), "{}", text(&o));
    let o = shears(dir.path(), &["inspect", "small.onnx", "--input", "3x32x32"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("sparsity 50.00%"), "{}", text(&o));
}

/// An ImageFolder (train/ and val/, one folder of PNGs per class) is data
/// for a comparison: the embedded glyphs written out as grey PNGs read back
/// pixel for pixel (to 1/255) and train.
#[test]
fn an_image_folder_is_data_for_a_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("glyph-images");
    let (train, test) = shears::data::embedded_glyphs(300, 100, 0);
    for (split, ds) in [("train", &train), ("val", &test)] {
        for i in 0..ds.len() {
            let class = dir_name(ds.labels[i]);
            let folder = root.join(split).join(&class);
            std::fs::create_dir_all(&folder).unwrap();
            let file = std::fs::File::create(folder.join(format!("{i:04}.PNG"))).unwrap();
            let mut enc = png::Encoder::new(file, ds.width as u32, ds.height as u32);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let bytes: Vec<u8> = ds
                .image(i)
                .iter()
                .map(|v| (v * 255.0).round() as u8)
                .collect();
            enc.write_header()
                .unwrap()
                .write_image_data(&bytes)
                .unwrap();
        }
    }
    let spec = shears::data::DatasetSpec::detect(&root).unwrap();
    assert!(
        matches!(spec, shears::data::DatasetSpec::Images { .. }),
        "{spec:?}"
    );
    let (tr, te) = spec.load().unwrap();
    assert_eq!((tr.len(), te.len()), (train.len(), test.len()));
    assert_eq!(tr.image_shape(), train.image_shape());
    // Files are read class by class: compare each image with its original.
    let mut k = 0;
    for class in 0..train.num_classes as u32 {
        for i in (0..train.len()).filter(|&i| train.labels[i] == class) {
            let diff = tr
                .image(k)
                .iter()
                .zip(train.image(i))
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff <= 0.5 / 255.0 + 1e-6, "image {i}: {diff}");
            k += 1;
        }
    }
    let cfg = one_shot_config(dir.path());
    let root = root.display().to_string();
    let o = shears(
        dir.path(),
        &[
            "compare", "--config", &cfg, "--out", "out", "--quiet", "--data", &root, "--resize",
            "34",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = shears::experiment::load_results(&dir.path().join("out")).unwrap();
    assert_eq!(r.data.name, "glyph-images");
    // One epoch of the tiny config: well above chance, not more.
    let chance = 1.0 / train.num_classes as f64;
    let base = &r.baselines[0];
    assert!(f64::from(base.test.acc) > 1.5 * chance, "{:?}", base.test);
    // The base model keeps its preprocessing: the resize before the crop
    // and the normalisation it was trained with.
    let file = dir
        .path()
        .join("out")
        .join(base.model_file.as_ref().unwrap());
    let saved = shears::model::checkpoint::Checkpoint::read(&file).unwrap();
    assert_eq!(saved.arch.preprocess.resize, Some(34));
    assert_eq!(saved.arch.input, [1, 28, 28]);
    assert!(matches!(
        saved.arch.preprocess.norm,
        shears::model::NormChoice::Fixed { .. }
    ));
    // `eval` of that checkpoint on the same folder brings the images to the
    // model the same way (resize 34, crop 28) without being told: the test
    // accuracy is the comparison's to the image.
    let file = file.display().to_string();
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--checkpoint", &file, "--data", &root];
        args.extend(extra);
        let o = shears(dir.path(), &args);
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let at = out.find("test accuracy ").unwrap() + "test accuracy ".len();
        out[at..].split('%').next().unwrap().parse::<f64>().unwrap()
    };
    let acc = eval(&[]);
    assert!(
        (acc - f64::from(base.test.acc) * 100.0).abs() < 0.5 * 100.0 / test.len() as f64,
        "eval {acc}% vs comparison {:?}",
        base.test
    );
    // Told another resize, it sees other pixels.
    assert_ne!(eval(&["--resize", "56"]), acc);
}

/// Class folder names that sort as the labels do.
fn dir_name(label: u32) -> String {
    format!("class-{label:02}")
}

/// `inspect` of an nn.Sequential state dict without `--input` takes the
/// channels from its first convolution and, where the size does not fit,
/// says that `--input` is needed (issue 27, item 13).
#[test]
fn inspect_without_input_takes_the_first_convs_channels_and_asks_for_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/torchvision/mnist_cnn.pth");
    let layers =
        "conv(p=1), relu, maxpool(2), conv(p=1), relu, maxpool(2), flatten, linear, relu, \
                  dropout(0.25), linear";
    let m = model.to_str().unwrap();
    let o = shears(dir.path(), &["inspect", m, "--layers", layers]);
    assert_clean_error(&o, &["[1, 224, 224]", "--input CxHxW"]);
    let o = shears(
        dir.path(),
        &["inspect", m, "--layers", layers, "--input", "1x28x28"],
    );
    assert!(o.status.success(), "{}", text(&o));
    // A layer spec given as a flag is named as the flag in errors.
    let short = [
        "inspect",
        m,
        "--layers",
        "conv(p=1), relu",
        "--input",
        "1x28x28",
    ];
    let o = shears(dir.path(), &short);
    assert_clean_error(&o, &["`--layers`"]);
    assert!(!text(&o).contains("import.layers"), "{}", text(&o));
}
