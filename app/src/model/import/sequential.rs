//! `nn.Sequential` models: the state dict names the layers that hold
//! tensors (`0.weight`, `3.weight`, ...) but not the rest, so the user
//! writes the whole layer list in a short spec, one item per module index:
//!
//! ```text
//! conv(p=1), bn, relu, maxpool(2), conv, relu, maxpool(2), flatten, linear
//! ```
//!
//! Items: `conv` (kernel and channels from the weight; `s=`/`stride=`,
//! `p=`/`pad=`/`padding=`), `linear`, `bn`, `relu`, `maxpool(k[, s[, p]])`,
//! `avgpool` (global average), `adaptiveavgpool(h[, w])`, `flatten`,
//! `dropout(p)` (default 0.5), `identity`. Item `i` is module `i`: its
//! tensors are `{i}.weight`, `{i}.bias`, ...

use super::state_dict::StateDict;
use crate::error::{Error, Result};
use crate::model::arch::{Architecture, Family, Node, Preprocess};

/// Config key errors are reported under.
const KEY: &str = "import.layers";

/// One parsed spec item: its name and arguments (positional, or `key=value`).
#[derive(Debug, PartialEq)]
struct Item {
    kind: String,
    args: Vec<(Option<String>, String)>,
}

fn parse(spec: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut rest = spec.trim();
    while !rest.is_empty() {
        let end = rest.find([',', ';', '\n', '(']).unwrap_or(rest.len());
        let kind = rest[..end].trim().to_ascii_lowercase();
        rest = &rest[end..];
        let mut args = Vec::new();
        if let Some(r) = rest.strip_prefix('(') {
            let close = r.find(')').ok_or_else(|| {
                Error::config(
                    KEY,
                    format!("item {} (`{kind}`): `(` without `)`", items.len()),
                )
            })?;
            for a in r[..close]
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
            {
                args.push(match a.split_once('=') {
                    Some((k, v)) => (Some(k.trim().to_ascii_lowercase()), v.trim().to_string()),
                    None => (None, a.to_string()),
                });
            }
            rest = &r[close + 1..];
        }
        rest = rest.trim_start_matches([',', ';', '\n', ' ', '\t', '\r']);
        if kind.is_empty() {
            return Err(Error::config(KEY, format!("item {} is empty", items.len())));
        }
        items.push(Item { kind, args });
    }
    if items.is_empty() {
        return Err(Error::config(KEY, "no layers given"));
    }
    Ok(items)
}

impl Item {
    /// Argument `names` (or positional `pos`), parsed.
    fn arg<T: std::str::FromStr>(&self, i: usize, pos: usize, names: &[&str]) -> Result<Option<T>> {
        let found = self
            .args
            .iter()
            .find(|(k, _)| k.as_deref().is_some_and(|k| names.contains(&k)))
            .or_else(|| self.args.iter().filter(|(k, _)| k.is_none()).nth(pos));
        found
            .map(|(_, v)| {
                v.parse().map_err(|_| {
                    Error::config(
                        KEY,
                        format!("item {i} (`{}`): `{v}` is not a number", self.kind),
                    )
                })
            })
            .transpose()
    }
}

/// Builds the architecture of an `nn.Sequential` from its state dict and the
/// layer spec; errors name the item and tensor that do not fit.
pub fn build(sd: &StateDict, spec: &str, input: [usize; 3]) -> Result<Architecture> {
    let items = parse(spec)?;
    let mut nodes = Vec::new();
    let mut used = 0;
    for (i, item) in items.iter().enumerate() {
        let name = i.to_string();
        let weight = sd.shape(&format!("{i}.weight"));
        let bias = sd.has(&format!("{i}.bias"));
        let needs = |what: &str| -> Result<&[usize]> {
            weight.ok_or_else(|| {
                Error::config(
                    KEY,
                    format!("item {i} is `{what}` but the state dict has no `{i}.weight`"),
                )
            })
        };
        let node = match item.kind.as_str() {
            "conv" | "conv2d" => {
                let d = needs("conv")?;
                let &[out_c, in_c, kh, kw] = d else {
                    return Err(Error::config(
                        KEY,
                        format!("item {i} is `conv` but `{i}.weight` has shape {d:?}"),
                    ));
                };
                if kh != kw {
                    return Err(Error::config(
                        KEY,
                        format!("item {i}: {kh}x{kw} kernels are not supported (square only)"),
                    ));
                }
                used += 1 + usize::from(bias);
                Node::Conv2d {
                    name,
                    in_c,
                    out_c,
                    k: kh,
                    stride: item.arg(i, 0, &["s", "stride"])?.unwrap_or(1),
                    pad: item.arg(i, 1, &["p", "pad", "padding"])?.unwrap_or(0),
                    bias,
                }
            }
            "linear" | "fc" => {
                let d = needs("linear")?;
                let &[out_f, in_f] = d else {
                    return Err(Error::config(
                        KEY,
                        format!("item {i} is `linear` but `{i}.weight` has shape {d:?}"),
                    ));
                };
                used += 1 + usize::from(bias);
                Node::Linear {
                    name,
                    in_f,
                    out_f,
                    bias,
                }
            }
            "bn" | "batchnorm" | "batchnorm2d" => {
                let d = needs("bn")?;
                if !sd.has(&format!("{i}.running_mean")) || d.len() != 1 {
                    return Err(Error::config(
                        KEY,
                        format!("item {i} is `bn` but `{i}` has no BatchNorm statistics"),
                    ));
                }
                used += 4;
                Node::BatchNorm { name, c: d[0] }
            }
            other => {
                if weight.is_some() {
                    return Err(Error::config(
                        KEY,
                        format!("item {i} is `{other}` but the state dict has `{i}.weight`: a conv, linear or bn goes here"),
                    ));
                }
                match other {
                    "relu" => Node::Relu,
                    "flatten" => Node::Flatten,
                    "avgpool" | "gap" | "globalavgpool" => Node::GlobalAvgPool,
                    "identity" => continue,
                    "maxpool" | "maxpool2d" => {
                        let k = item.arg(i, 0, &["k", "kernel"])?.unwrap_or(2);
                        let s = item.arg(i, 1, &["s", "stride"])?.unwrap_or(k);
                        let p = item.arg(i, 2, &["p", "pad", "padding"])?.unwrap_or(0);
                        Node::max_pool(k, s, p)
                    }
                    "adaptiveavgpool" | "adaptiveavgpool2d" => {
                        let h = item.arg(i, 0, &["h"])?.unwrap_or(1);
                        let w = item.arg(i, 1, &["w"])?.unwrap_or(h);
                        Node::AdaptiveAvgPool { h, w }
                    }
                    "dropout" => Node::Dropout {
                        p: item.arg(i, 0, &["p"])?.unwrap_or(0.5),
                    },
                    _ => {
                        return Err(Error::config(
                            KEY,
                            format!(
                                "item {i}: unknown layer `{other}` (use conv, linear, bn, relu, \
                                 maxpool, avgpool, adaptiveavgpool, flatten, dropout, identity)"
                            ),
                        ))
                    }
                }
            }
        };
        nodes.push(node);
    }
    if used != sd.tensors.len() {
        let extra = sd
            .tensors
            .keys()
            .find(|k| {
                k.split('.')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_none_or(|n| n >= items.len())
            })
            .cloned()
            .unwrap_or_default();
        return Err(Error::config(
            KEY,
            format!(
                "{} items use {used} of the state dict's {} tensors; `{extra}` belongs to no item",
                items.len(),
                sd.tensors.len()
            ),
        ));
    }
    let num_classes = nodes.iter().rev().find_map(|n| match n {
        Node::Linear { out_f, .. } => Some(*out_f),
        _ => None,
    });
    let arch = Architecture {
        family: Family::Sequential,
        input,
        num_classes: num_classes.unwrap_or(0),
        graph: None,
        nodes,
        preprocess: Preprocess::default(),
    };
    arch.check()
        .map_err(|e| Error::config(KEY, format!("the layers do not fit a {input:?} input: {e}")))?;
    Ok(arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_positional_and_named_arguments() {
        let items = parse("conv(s=2, p=1), relu; maxpool(3,2,1)\nflatten,linear").unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(items[0].arg::<usize>(0, 0, &["s"]).unwrap(), Some(2));
        assert_eq!(items[0].arg::<usize>(0, 1, &["p"]).unwrap(), Some(1));
        assert_eq!(items[2].arg::<usize>(2, 2, &["p"]).unwrap(), Some(1));
        assert!(parse("conv(p=1").is_err());
        assert!(parse(" ").is_err());
        let e = items[0].arg::<usize>(0, 0, &["x"]);
        assert!(e.unwrap().is_none());
        let bad = parse("maxpool(two)").unwrap();
        assert!(bad[0].arg::<usize>(0, 0, &["k"]).is_err());
    }
}
