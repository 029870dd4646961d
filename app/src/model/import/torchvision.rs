//! torchvision's ResNet and VGG recognised from a state dict's names and
//! shapes, at any depth, width and class count, built as Shears
//! architectures whose layers keep torchvision's names (so an exported state
//! dict loads back into the torchvision model).

use super::state_dict::StateDict;
use crate::error::{Error, Result};
use crate::model::arch::{Architecture, Family, Node, Preprocess};

/// What a state dict was recognised as, with the notes the user should read
/// (assumptions the names cannot confirm).
#[derive(Debug)]
pub struct Recognised {
    /// The architecture.
    pub arch: Architecture,
    /// A short name: `resnet18`, `vgg16_bn`, ...
    pub name: String,
    /// Assumptions made.
    pub notes: Vec<String>,
}

/// A torchvision ResNet or VGG, if the names look like one; `None` when
/// they look like neither; an error when they look like one but do not fit.
pub fn recognise(sd: &StateDict, input: [usize; 3]) -> Option<Result<Recognised>> {
    if sd.has("conv1.weight") && sd.has("layer1.0.conv1.weight") && sd.has("fc.weight") {
        Some(resnet(sd, input))
    } else if sd.has("features.0.weight") && sd.has("classifier.0.weight") {
        Some(vgg(sd, input))
    } else {
        None
    }
}

fn dims<'a>(sd: &'a StateDict, name: &str) -> Result<&'a [usize]> {
    sd.shape(name)
        .ok_or_else(|| Error::Shape(format!("tensor `{name}` is missing")))
}

/// A conv node named `name` with the shape its weight has; `k` must be the
/// kernel the architecture expects (`None`: any square kernel).
fn conv(sd: &StateDict, name: &str, k: Option<usize>, stride: usize) -> Result<Node> {
    let d = dims(sd, &format!("{name}.weight"))?;
    let &[out_c, in_c, kh, kw] = d else {
        return Err(Error::Shape(format!(
            "`{name}.weight` has shape {d:?}, a convolution needs 4 dimensions"
        )));
    };
    if kh != kw || k.is_some_and(|k| k != kh) {
        return Err(Error::Shape(format!(
            "`{name}.weight` has a {kh}x{kw} kernel, expected {}",
            k.map_or("a square one".into(), |k| format!("{k}x{k}"))
        )));
    }
    Ok(Node::Conv2d {
        name: name.into(),
        in_c,
        out_c,
        k: kh,
        stride,
        pad: kh / 2,
        bias: sd.has(&format!("{name}.bias")),
    })
}

fn bn(sd: &StateDict, name: &str) -> Result<Node> {
    let d = dims(sd, &format!("{name}.weight"))?;
    let &[c] = d else {
        return Err(Error::Shape(format!(
            "`{name}.weight` has shape {d:?}, a BatchNorm's has one dimension"
        )));
    };
    Ok(Node::BatchNorm {
        name: name.into(),
        c,
    })
}

fn linear(sd: &StateDict, name: &str) -> Result<Node> {
    let d = dims(sd, &format!("{name}.weight"))?;
    let &[out_f, in_f] = d else {
        return Err(Error::Shape(format!(
            "`{name}.weight` has shape {d:?}, a linear layer needs 2 dimensions"
        )));
    };
    Ok(Node::Linear {
        name: name.into(),
        in_f,
        out_f,
        bias: sd.has(&format!("{name}.bias")),
    })
}

fn out_features(node: &Node) -> usize {
    match node {
        Node::Linear { out_f, .. } => *out_f,
        _ => 0,
    }
}

fn resnet(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let mut notes = Vec::new();
    let mut nodes = Vec::new();
    if dims(sd, "conv1.weight")?.get(2) == Some(&3) {
        // The CIFAR variant: torchvision's names around a 3x3 stem with
        // stride 1 and no max pool.
        nodes.extend([conv(sd, "conv1", Some(3), 1)?, bn(sd, "bn1")?, Node::Relu]);
        notes.push(
            "3x3 stem: taken as the CIFAR variant (stride 1, no max pool after it)".to_string(),
        );
    } else {
        nodes.extend([
            conv(sd, "conv1", None, 2)?,
            bn(sd, "bn1")?,
            Node::Relu,
            Node::max_pool(3, 2, 1),
        ]);
    }
    let bottleneck = sd.has("layer1.0.conv3.weight");
    let mut depth_blocks = Vec::new();
    for layer in 1.. {
        let blocks = (0..)
            .take_while(|j| sd.has(&format!("layer{layer}.{j}.conv1.weight")))
            .count();
        if blocks == 0 {
            break;
        }
        depth_blocks.push(blocks);
        for j in 0..blocks {
            let p = format!("layer{layer}.{j}");
            let stride = if layer > 1 && j == 0 { 2 } else { 1 };
            let body = if bottleneck {
                let c2 = conv(sd, &format!("{p}.conv2"), Some(3), stride)?;
                if let (Node::Conv2d { in_c, .. }, Some(d)) =
                    (&c2, sd.shape(&format!("{p}.conv1.weight")))
                {
                    if d.first() != Some(in_c) {
                        return Err(Error::Shape(format!(
                            "`{p}.conv2` takes {in_c} of {d:?} channels per group: grouped \
                             convolutions (ResNeXt) are not supported"
                        )));
                    }
                }
                vec![
                    conv(sd, &format!("{p}.conv1"), Some(1), 1)?,
                    bn(sd, &format!("{p}.bn1"))?,
                    Node::Relu,
                    c2,
                    bn(sd, &format!("{p}.bn2"))?,
                    Node::Relu,
                    conv(sd, &format!("{p}.conv3"), Some(1), 1)?,
                    bn(sd, &format!("{p}.bn3"))?,
                ]
            } else {
                vec![
                    conv(sd, &format!("{p}.conv1"), Some(3), stride)?,
                    bn(sd, &format!("{p}.bn1"))?,
                    Node::Relu,
                    conv(sd, &format!("{p}.conv2"), Some(3), 1)?,
                    bn(sd, &format!("{p}.bn2"))?,
                ]
            };
            let shortcut = if sd.has(&format!("{p}.downsample.0.weight")) {
                vec![
                    conv(sd, &format!("{p}.downsample.0"), Some(1), stride)?,
                    bn(sd, &format!("{p}.downsample.1"))?,
                ]
            } else {
                vec![]
            };
            nodes.push(Node::Residual { body, shortcut });
            nodes.push(Node::Relu);
        }
    }
    let fc = linear(sd, "fc")?;
    let classes = out_features(&fc);
    nodes.extend([Node::GlobalAvgPool, fc]);
    let convs_per_block = if bottleneck { 3 } else { 2 };
    let depth = depth_blocks.iter().sum::<usize>() * convs_per_block + 2;
    let arch = Architecture {
        family: Family::Resnet,
        input,
        num_classes: classes,
        graph: None,
        nodes,
        preprocess: Preprocess::default(),
    };
    arch.check()?;
    Ok(Recognised {
        arch,
        name: format!("resnet{depth}"),
        notes,
    })
}

/// Indices `i` with a tensor `{prefix}.{i}.weight`, ascending.
fn indices(sd: &StateDict, prefix: &str) -> Vec<usize> {
    let mut v: Vec<usize> = sd
        .tensors
        .keys()
        .filter_map(|k| {
            k.strip_prefix(prefix)?
                .strip_suffix(".weight")?
                .parse()
                .ok()
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn vgg(sd: &StateDict, input: [usize; 3]) -> Result<Recognised> {
    let mut notes = Vec::new();
    let mut nodes = Vec::new();
    let batch_norm = sd.has("features.1.running_mean");
    // make_layers writes conv, (bn), relu for a width and one max pool for
    // each "M": a gap in the conv indices is a pool.
    let step = if batch_norm { 3 } else { 2 };
    let mut next = 0;
    let mut convs = 0;
    let conv_indices: Vec<usize> = indices(sd, "features.")
        .into_iter()
        .filter(|i| sd.shape(&format!("features.{i}.weight")).map(|d| d.len()) == Some(4))
        .collect();
    let mut last_c = input[0];
    for &i in &conv_indices {
        while next < i {
            nodes.push(Node::max_pool(2, 2, 0));
            next += 1;
        }
        let c = conv(sd, &format!("features.{i}"), Some(3), 1)?;
        if let Node::Conv2d { out_c, .. } = c {
            last_c = out_c;
        }
        nodes.push(c);
        if batch_norm {
            nodes.push(bn(sd, &format!("features.{}", i + 1))?);
        }
        nodes.push(Node::Relu);
        next = i + step;
        convs += 1;
    }
    // torchvision's configurations all end with a max pool, which leaves no
    // name behind.
    nodes.push(Node::max_pool(2, 2, 0));
    notes.push("a final 2x2 max pool after the last conv, as in torchvision's VGG".to_string());
    let heads = indices(sd, "classifier.");
    let first = linear(sd, &format!("classifier.{}", heads[0]))?;
    let Node::Linear { in_f, .. } = first else {
        unreachable!("linear builds a linear")
    };
    let side = (1..=64).find(|s| s * s * last_c == in_f).ok_or_else(|| {
        Error::Shape(format!(
            "`classifier.{}` takes {in_f} features, not {last_c} channels times a square map",
            heads[0]
        ))
    })?;
    nodes.extend([Node::AdaptiveAvgPool { h: side, w: side }, Node::Flatten]);
    let mut classes = 0;
    for (n, &i) in heads.iter().enumerate() {
        if n > 0 {
            // torchvision: Linear, ReLU, Dropout between linears.
            match i - heads[n - 1] {
                3 => nodes.extend([Node::Relu, Node::Dropout { p: 0.5 }]),
                2 => nodes.push(Node::Relu),
                _ => {}
            }
        }
        let l = linear(sd, &format!("classifier.{i}"))?;
        classes = out_features(&l);
        nodes.push(l);
    }
    if heads.len() > 1 {
        notes.push("dropout 0.5 between the classifier's linear layers, as in torchvision".into());
    }
    let arch = Architecture {
        family: Family::TorchVgg,
        input,
        num_classes: classes,
        graph: None,
        nodes,
        preprocess: Preprocess::default(),
    };
    arch.check()?;
    let depth = convs + heads.len();
    Ok(Recognised {
        arch,
        name: format!("vgg{depth}{}", if batch_norm { "_bn" } else { "" }),
        notes,
    })
}
