//! The UCI optical-recognition digits CSV (as bundled with scikit-learn):
//! one row per image, 64 integers `0..=16` (8x8 grey, row-major) then the
//! label `0..=9`, comma-separated, no header. Raw or gzip.

use std::path::Path;

use super::{read_maybe_gz, split::stratified_indices, Dataset};
use crate::error::{Error, Result};

/// Pixels per digit image (8 x 8).
const PIXELS: usize = 64;
/// Largest pixel value.
const MAX_PIXEL: i64 = 16;
/// Number of digit classes.
const CLASSES: usize = 10;

/// Reads the whole digits CSV (raw, or gzip detected by its first bytes) as
/// one dataset of 1x8x8 images scaled by 1/16, 10 classes. Blank lines are
/// skipped; `\r\n` line ends are accepted.
///
/// Errors name the file, the 1-based line number and column: wrong field
/// count, a field that is not an integer, a value out of range.
pub fn read_digits_csv(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    parse_digits_csv(&read_maybe_gz(path)?, path)
}

/// [`read_digits_csv`] of bytes already read (and decompressed); errors
/// name `path`.
pub fn parse_digits_csv(bytes: &[u8], path: &Path) -> Result<Dataset> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::format(
            path,
            format!(
                "not a text file (invalid UTF-8 at byte {})",
                e.valid_up_to()
            ),
        )
    })?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (lineno, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != PIXELS + 1 {
            return Err(Error::format(
                path,
                format!(
                    "line {lineno}: expected {} comma-separated fields (64 pixels then the label), found {}",
                    PIXELS + 1,
                    fields.len()
                ),
            ));
        }
        for (col, field) in fields.iter().enumerate().map(|(i, f)| (i + 1, f.trim())) {
            let is_label = col == PIXELS + 1;
            let value: i64 = field.parse().map_err(|_| {
                Error::format(
                    path,
                    format!(
                        "line {lineno}, column {col} ({}): `{field}` is not an integer",
                        if is_label { "label" } else { "pixel" }
                    ),
                )
            })?;
            let max = if is_label {
                CLASSES as i64 - 1
            } else {
                MAX_PIXEL
            };
            if !(0..=max).contains(&value) {
                return Err(Error::format(
                    path,
                    format!(
                        "line {lineno}, column {col} ({}): value {value} is out of range 0..={max}",
                        if is_label { "label" } else { "pixel" }
                    ),
                ));
            }
            if is_label {
                labels.push(value as u32);
            } else {
                images.push(value as f32 / MAX_PIXEL as f32);
            }
        }
    }
    if labels.is_empty() {
        return Err(Error::format(path, "no data rows (the file is empty)"));
    }
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .map(|s| {
            let s = s.strip_suffix(".gz").unwrap_or(&s);
            s.strip_suffix(".csv").unwrap_or(s).to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "digits".to_string());
    Ok(Dataset::new(name, images, labels, [1, 8, 8], CLASSES))
}

/// Loads the digits CSV and splits it into `(train, test)` with a seeded
/// stratified split: about `test_fraction` of every class goes to the test
/// set. Same `(file, test_fraction, seed)` → same split.
///
/// `test_fraction` must lie in `(0, 1)` (a config error on `test_fraction`
/// otherwise).
pub fn load_digits_csv(
    path: impl AsRef<Path>,
    test_fraction: f64,
    seed: u64,
) -> Result<(Dataset, Dataset)> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::config(
            "test_fraction",
            format!("must be between 0 and 1 (exclusive), got {test_fraction}"),
        ));
    }
    let all = read_digits_csv(path)?;
    let (train_idx, test_idx) = stratified_indices(&all.labels, test_fraction, seed);
    Ok((all.subset(&train_idx), all.subset(&test_idx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: u32, px: u32) -> String {
        let mut f: Vec<String> = (0..64).map(|i| ((px + i) % 17).to_string()).collect();
        f.push(label.to_string());
        f.join(",")
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn parses_small_file() {
        let tmp = tempfile::tempdir().unwrap();
        let text: String = (0..20).map(|i| row(i % 4, i) + "\r\n").collect::<String>() + "\n";
        let p = write(tmp.path(), "small.csv", &text);
        let ds = read_digits_csv(&p).unwrap();
        assert_eq!(ds.len(), 20);
        assert_eq!(ds.image_shape(), [1, 8, 8]);
        assert_eq!(ds.num_classes, 10);
        assert_eq!(ds.name, "small");
        assert_eq!(ds.image(0)[16], 16.0 / 16.0);
        assert_eq!(ds.image(0)[1], 1.0 / 16.0);
        ds.validate().unwrap();
        let (tr, te) = load_digits_csv(&p, 0.25, 3).unwrap();
        assert_eq!(tr.len() + te.len(), 20);
        assert_eq!(te.class_counts(), vec![1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn wrong_field_count() {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!("{}\n{}\n", row(1, 0), "1,2,3");
        let p = write(tmp.path(), "bad.csv", &text);
        let err = read_digits_csv(&p).unwrap_err().to_string();
        assert!(err.contains("bad.csv") && err.contains("line 2"), "{err}");
        assert!(
            err.contains("expected 65") && err.contains("found 3"),
            "{err}"
        );
    }

    #[test]
    fn non_integer_field() {
        let tmp = tempfile::tempdir().unwrap();
        let mut bad = row(1, 0).split(',').map(String::from).collect::<Vec<_>>();
        bad[9] = "4.5".into();
        let text = format!("{}\n\n{}\n", row(1, 0), bad.join(","));
        let p = write(tmp.path(), "bad.csv", &text);
        let err = read_digits_csv(&p).unwrap_err().to_string();
        assert!(err.contains("line 3, column 10"), "{err}");
        assert!(err.contains("`4.5` is not an integer"), "{err}");
    }

    #[test]
    fn out_of_range_values() {
        let tmp = tempfile::tempdir().unwrap();
        let mut bad = row(1, 0).split(',').map(String::from).collect::<Vec<_>>();
        bad[0] = "17".into();
        let p = write(tmp.path(), "bad.csv", &bad.join(","));
        let err = read_digits_csv(&p).unwrap_err().to_string();
        assert!(
            err.contains("line 1, column 1 (pixel): value 17 is out of range 0..=16"),
            "{err}"
        );
        let p = write(tmp.path(), "bad2.csv", &row(10, 0));
        let err = read_digits_csv(&p).unwrap_err().to_string();
        assert!(err.contains("column 65 (label): value 10"), "{err}");
        let p = write(tmp.path(), "empty.csv", "\n\n");
        assert!(read_digits_csv(&p)
            .unwrap_err()
            .to_string()
            .contains("no data rows"));
    }

    #[test]
    fn bad_fraction_is_config_error() {
        let err = load_digits_csv("whatever.csv", 1.0, 0).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err}");
    }

    #[test]
    fn real_digits_gz_and_plain_equal() {
        let gz = crate::data::shared_datasets_dir().join("uci-digits/digits.csv.gz");
        let all = read_digits_csv(&gz).unwrap();
        assert_eq!(all.len(), 1797);
        assert_eq!(all.name, "digits");
        assert!(all.class_counts().iter().all(|&c| c >= 170));
        assert!(all
            .images
            .to_f32()
            .iter()
            .all(|&p| (0.0..=1.0).contains(&p)));
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("digits.csv");
        std::fs::write(&plain, read_maybe_gz(&gz).unwrap()).unwrap();
        let again = read_digits_csv(&plain).unwrap();
        assert_eq!(all.images, again.images);
        assert_eq!(all.labels, again.labels);

        let (tr, te) = load_digits_csv(&gz, 0.2, 7).unwrap();
        assert_eq!(tr.len() + te.len(), 1797);
        assert!(
            (te.len() as f64 - 1797.0 * 0.2).abs() < 10.0,
            "{}",
            te.len()
        );
        let (tr2, te2) = load_digits_csv(&plain, 0.2, 7).unwrap();
        assert_eq!(tr.labels, tr2.labels);
        assert_eq!(te.images, te2.images);
        let (_, te3) = load_digits_csv(&gz, 0.2, 8).unwrap();
        assert_ne!(te.images, te3.images);
    }
}
