//! Constant folding at import: the ops an ONNX exporter writes to compute
//! shapes, indices and scales (`Shape`, `Gather`, `Slice`, `Concat`,
//! `Unsqueeze`, `ConstantOfShape`, `Equal`, `Where`, `Mod`, `Cast`,
//! `Range`, `Expand`, arithmetic, ...) evaluated on constants, so the graph
//! holds only what computes on the data.
//!
//! The batch size is free; a shape that holds it holds [`BATCH`] times the
//! size there (a `Shape` of a value with the batch), which multiplication
//! and concatenation keep and [`super::read`] turns back into the batch.

use super::proto::{attr, dtype, NodeProto};
use super::tensor::{Const, Values};
use std::rc::Rc;

/// Marks "the batch size" in a folded shape: `BATCH * k` is `k` times it.
/// Far above any real dimension and exact in `i64` arithmetic.
pub const BATCH: i64 = 1 << 40;

type R<T> = std::result::Result<T, String>;

/// The most values a folded constant may hold (what a model's shape
/// arithmetic needs is tiny; a corrupt file could ask for more).
const MAX_FOLDED: usize = 1 << 26;

/// The number of values of `dims`, if it is at most [`MAX_FOLDED`].
fn count(dims: &[usize]) -> R<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_FOLDED)
        .ok_or_else(|| format!("a constant of shape {dims:?} is too large"))
}

/// `c` (a matrix) transposed.
pub fn transpose2(c: Const) -> Const {
    let &[r, k] = c.dims.as_slice() else {
        return c;
    };
    let v = c.as_f32();
    let mut t = vec![0f32; v.len()];
    for i in 0..r {
        for j in 0..k {
            t[j * r + i] = v[i * k + j];
        }
    }
    Const {
        dims: vec![k, r],
        values: Values::F(Rc::new(t)),
        origin: c.origin,
    }
}

/// `c` times `f`.
pub fn scale(c: Const, f: f32) -> Const {
    let v = c.as_f32().into_iter().map(|x| x * f).collect();
    Const {
        values: Values::F(Rc::new(v)),
        ..c
    }
}

fn attr_i(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(super::proto::AttributeProto::int_list)
}

fn need(ins: &[Option<Const>], i: usize) -> R<&Const> {
    ins.get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| format!("input {i} is missing"))
}

fn axis_of(axis: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} of a rank-{rank} tensor"))
    }
}

/// Row-major (outer, size, inner) around `axis`.
fn around(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

/// Takes the entries `pick` along `axis`.
fn take(c: &Const, axis: usize, pick: &[usize]) -> Const {
    let (outer, size, inner) = around(&c.dims, axis);
    let mut idx = Vec::with_capacity(outer * pick.len() * inner);
    for o in 0..outer {
        for &p in pick {
            for i in 0..inner {
                idx.push((o * size + p) * inner + i);
            }
        }
    }
    let mut dims = c.dims.clone();
    dims[axis] = pick.len();
    let values = match &c.values {
        Values::F(v) => Values::F(Rc::new(idx.iter().map(|&i| v[i]).collect())),
        Values::I(v) => Values::I(Rc::new(idx.iter().map(|&i| v[i]).collect())),
    };
    Const {
        dims,
        values,
        origin: c.origin.clone(),
    }
}

/// An elementwise binary op with NumPy broadcasting.
fn binary(
    a: &Const,
    b: &Const,
    f: impl Fn(f64, f64) -> f64,
    int: impl Fn(i64, i64) -> R<i64>,
) -> R<Const> {
    let dims = crate::model::ops::layout::broadcast(&a.dims, &b.dims)?;
    let n = count(&dims)?;
    let index = |d: &[usize], k: usize| -> usize {
        // The input's index for output index k (broadcast axes read 0).
        let mut rem = k;
        let mut idx = 0;
        let mut stride = 1;
        let off = dims.len() - d.len();
        let mut strides = vec![0; dims.len()];
        for i in (0..d.len()).rev() {
            strides[i + off] = if d[i] == 1 { 0 } else { stride };
            stride *= d[i];
        }
        for i in (0..dims.len()).rev() {
            let c = rem % dims[i].max(1);
            rem /= dims[i].max(1);
            idx += c * strides[i];
        }
        idx
    };
    let values = match (&a.values, &b.values) {
        (Values::I(x), Values::I(y)) => Values::I(Rc::new(
            (0..n)
                .map(|k| int(x[index(&a.dims, k)], y[index(&b.dims, k)]))
                .collect::<R<_>>()?,
        )),
        _ => {
            let (x, y) = (a.as_f32(), b.as_f32());
            Values::F(Rc::new(
                (0..n)
                    .map(|k| f(x[index(&a.dims, k)] as f64, y[index(&b.dims, k)] as f64) as f32)
                    .collect(),
            ))
        }
    };
    Ok(Const {
        dims,
        values,
        origin: None,
    })
}

fn map(c: &Const, f: impl Fn(f64) -> f64) -> Const {
    Const::floats(
        c.dims.clone(),
        c.as_f32().into_iter().map(|v| f(v as f64) as f32).collect(),
    )
}

fn free_of_batch(v: &[i64], what: &str) -> R<()> {
    if v.iter().any(|&x| x.abs() >= BATCH) {
        Err(format!("{what} depends on the batch size"))
    } else {
        Ok(())
    }
}

/// Node `n` evaluated on constant inputs (`None` where an optional input is
/// left out); its outputs in order.
pub fn eval(n: &NodeProto, ins: &[Option<Const>]) -> R<Vec<Const>> {
    let x = || need(ins, 0);
    let one = |c: Const| Ok(vec![c]);
    match n.op_type.as_str() {
        "Identity" => one(x()?.clone()),
        "Cast" => {
            let to = attr_i(n, "to").unwrap_or(dtype::FLOAT as i64) as i32;
            let c = x()?;
            let values = match to {
                dtype::FLOAT | dtype::DOUBLE | dtype::FLOAT16 => Values::F(Rc::new(c.as_f32())),
                dtype::BOOL => Values::I(Rc::new(
                    c.as_f32().iter().map(|&v| (v != 0.0) as i64).collect(),
                )),
                _ => Values::I(Rc::new(c.as_i64())),
            };
            one(Const {
                values,
                ..c.clone()
            })
        }
        "Shape" => {
            let d: Vec<i64> = x()?.dims.iter().map(|&v| v as i64).collect();
            one(Const::ints(vec![d.len()], d))
        }
        "Size" => one(Const::ints(Vec::new(), vec![x()?.len() as i64])),
        "Gather" => {
            let c = x()?;
            let axis = axis_of(attr_i(n, "axis").unwrap_or(0), c.dims.len())?;
            let idx = need(ins, 1)?;
            let size = c.dims[axis] as i64;
            let pick: Vec<usize> = idx
                .as_i64()
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + size } else { i };
                    if (0..size).contains(&j) {
                        Ok(j as usize)
                    } else {
                        Err(format!("index {i} out of range {size}"))
                    }
                })
                .collect::<R<_>>()?;
            let t = take(c, axis, &pick);
            let mut dims = c.dims[..axis].to_vec();
            dims.extend(&idx.dims);
            dims.extend(&c.dims[axis + 1..]);
            one(t.with_dims(dims))
        }
        "Slice" => {
            let mut c = x()?.clone();
            let starts = need(ins, 1)?.as_i64();
            let ends = need(ins, 2)?.as_i64();
            let axes = match ins.get(3).and_then(Option::as_ref) {
                Some(a) => a.as_i64(),
                None => (0..starts.len() as i64).collect(),
            };
            let steps = match ins.get(4).and_then(Option::as_ref) {
                Some(s) => s.as_i64(),
                None => vec![1; starts.len()],
            };
            if starts.len() < axes.len() || ends.len() < axes.len() || steps.len() < axes.len() {
                return Err("slice starts, ends and steps shorter than its axes".into());
            }
            for k in 0..axes.len() {
                let axis = axis_of(axes[k], c.dims.len())?;
                let size = c.dims[axis] as i64;
                let step = steps[k];
                if step == 0 {
                    return Err("a slice step of 0".into());
                }
                let clampi =
                    |v: i64, lo: i64, hi: i64| (if v < 0 { v + size } else { v }).clamp(lo, hi);
                let pick: Vec<usize> = if step > 0 {
                    let (s, e) = (clampi(starts[k], 0, size), clampi(ends[k], 0, size));
                    (s..e).step_by(step as usize).map(|v| v as usize).collect()
                } else {
                    let (s, e) = (
                        clampi(starts[k], -1, size - 1),
                        clampi(ends[k], -1, size - 1),
                    );
                    let mut v = Vec::new();
                    let mut i = s;
                    while i > e {
                        v.push(i as usize);
                        i += step;
                    }
                    v
                };
                c = take(&c, axis, &pick);
            }
            one(c)
        }
        "Concat" => {
            let parts: Vec<&Const> = ins.iter().flatten().collect();
            let first = parts.first().ok_or("concat of nothing")?;
            let axis = axis_of(attr_i(n, "axis").unwrap_or(0), first.dims.len())?;
            for p in &parts {
                let same = p.dims.len() == first.dims.len()
                    && p.dims
                        .iter()
                        .zip(&first.dims)
                        .enumerate()
                        .all(|(i, (a, b))| i == axis || a == b);
                if !same {
                    return Err(format!("concat of {:?} and {:?}", first.dims, p.dims));
                }
            }
            let mut dims = first.dims.clone();
            dims[axis] = parts
                .iter()
                .map(|p| p.dims.get(axis).copied().unwrap_or(0))
                .sum();
            let outer: usize = first.dims[..axis].iter().product();
            let float = parts.iter().any(|p| matches!(p.values, Values::F(_)));
            let mut f = Vec::new();
            let mut i = Vec::new();
            for o in 0..outer {
                for p in &parts {
                    let chunk = p.len() / outer.max(1);
                    let r = o * chunk..(o + 1) * chunk;
                    if float {
                        f.extend_from_slice(&p.as_f32()[r]);
                    } else {
                        i.extend_from_slice(&p.as_i64()[r]);
                    }
                }
            }
            one(Const {
                dims,
                values: if float {
                    Values::F(Rc::new(f))
                } else {
                    Values::I(Rc::new(i))
                },
                origin: None,
            })
        }
        "Unsqueeze" | "Squeeze" => {
            let c = x()?;
            let axes = match ins.get(1).and_then(Option::as_ref) {
                Some(a) => a.as_i64(),
                None => attr_ints(n, "axes").unwrap_or_default(),
            };
            let mut dims = c.dims.clone();
            if n.op_type == "Unsqueeze" {
                let r = dims.len() + axes.len();
                let mut ax: Vec<usize> = axes.iter().map(|&a| axis_of(a, r)).collect::<R<_>>()?;
                ax.sort_unstable();
                for a in ax {
                    dims.insert(a.min(dims.len()), 1);
                }
            } else if axes.is_empty() {
                dims.retain(|&d| d != 1);
            } else {
                let mut ax: Vec<usize> = axes
                    .iter()
                    .map(|&a| axis_of(a, dims.len()))
                    .collect::<R<_>>()?;
                ax.sort_unstable();
                for a in ax.into_iter().rev() {
                    if dims[a] != 1 {
                        return Err(format!("axis {a} of {:?} is not of size 1", c.dims));
                    }
                    dims.remove(a);
                }
            }
            one(c.clone().with_dims(dims))
        }
        "Reshape" | "Flatten" => {
            let c = x()?;
            let dims = if n.op_type == "Flatten" {
                let a = axis_of(attr_i(n, "axis").unwrap_or(1), c.dims.len() + 1)?;
                vec![c.dims[..a].iter().product(), c.dims[a..].iter().product()]
            } else {
                let t = need(ins, 1)?.as_i64();
                free_of_batch(&t, "a reshape of a constant")?;
                let known: i64 = t
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        if v == 0 {
                            c.dims.get(i).copied().unwrap_or(1) as i64
                        } else if v < 0 {
                            1
                        } else {
                            v
                        }
                    })
                    .product();
                t.iter()
                    .enumerate()
                    .map(|(i, &v)| match v {
                        0 => c.dims.get(i).copied().unwrap_or(1),
                        -1 => c.len() / known.max(1) as usize,
                        v => v as usize,
                    })
                    .collect()
            };
            if count(&dims)? != c.len() {
                return Err(format!("cannot reshape {:?} to {dims:?}", c.dims));
            }
            one(c.clone().with_dims(dims))
        }
        "Transpose" => {
            let c = x()?;
            let rank = c.dims.len();
            let perm: Vec<usize> = attr_ints(n, "perm")
                .map(|p| p.iter().map(|&v| v.max(0) as usize).collect())
                .unwrap_or_else(|| (0..rank).rev().collect());
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..rank).collect::<Vec<_>>() {
                return Err(format!("{perm:?} is not a permutation of {rank} axes"));
            }
            if rank == 2 && perm == [1, 0] {
                return one(transpose2(c.clone()));
            }
            let dims: Vec<usize> = perm.iter().map(|&p| c.dims[p]).collect();
            let mut strides = vec![1usize; rank];
            for i in (0..rank.saturating_sub(1)).rev() {
                strides[i] = strides[i + 1] * c.dims[i + 1];
            }
            let n_out = c.len();
            let src: Vec<usize> = (0..n_out)
                .map(|k| {
                    let mut rem = k;
                    let mut s = 0;
                    for i in (0..rank).rev() {
                        let ci = rem % dims[i];
                        rem /= dims[i];
                        s += ci * strides[perm[i]];
                    }
                    s
                })
                .collect();
            let values = match &c.values {
                Values::F(v) => Values::F(Rc::new(src.iter().map(|&i| v[i]).collect())),
                Values::I(v) => Values::I(Rc::new(src.iter().map(|&i| v[i]).collect())),
            };
            one(Const {
                dims,
                values,
                origin: c.origin.clone(),
            })
        }
        "Add" => one(binary(x()?, need(ins, 1)?, |a, b| a + b, |a, b| Ok(a + b))?),
        "Sub" => one(binary(x()?, need(ins, 1)?, |a, b| a - b, |a, b| Ok(a - b))?),
        "Mul" => one(binary(x()?, need(ins, 1)?, |a, b| a * b, |a, b| Ok(a * b))?),
        "Div" => one(binary(
            x()?,
            need(ins, 1)?,
            |a, b| a / b,
            |a, b| {
                // ONNX's integer division truncates toward zero, as Rust's.
                a.checked_div(b)
                    .ok_or_else(|| "an integer division by 0".to_string())
            },
        )?),
        "Mod" => one(binary(
            x()?,
            need(ins, 1)?,
            |a, b| a - b * (a / b).floor(),
            |a, b| {
                // The sign of the divisor (ONNX's fmod = 0), as Python's `%`.
                a.checked_rem(b)
                    .map(|r| (r + b) % b)
                    .ok_or_else(|| "a modulo by 0".to_string())
            },
        )?),
        "Pow" => one(binary(x()?, need(ins, 1)?, f64::powf, |a, b| {
            Ok(a.pow(b.max(0) as u32))
        })?),
        "Equal" => one(binary(
            x()?,
            need(ins, 1)?,
            |a, b| (a == b) as i32 as f64,
            |a, b| Ok((a == b) as i64),
        )?
        .ints_if_bool()),
        "Less" => one(binary(
            x()?,
            need(ins, 1)?,
            |a, b| (a < b) as i32 as f64,
            |a, b| Ok((a < b) as i64),
        )?
        .ints_if_bool()),
        "Greater" => one(binary(
            x()?,
            need(ins, 1)?,
            |a, b| (a > b) as i32 as f64,
            |a, b| Ok((a > b) as i64),
        )?
        .ints_if_bool()),
        "Min" => one(binary(x()?, need(ins, 1)?, f64::min, |a, b| Ok(a.min(b)))?),
        "Max" => one(binary(x()?, need(ins, 1)?, f64::max, |a, b| Ok(a.max(b)))?),
        "Sqrt" => one(map(x()?, f64::sqrt)),
        "Ceil" => one(map(x()?, f64::ceil)),
        "Clip" => {
            // Bounds from inputs (opset 11 on) or attributes (before).
            let bound = |i: usize, name: &str| -> Option<f64> {
                match ins.get(i).and_then(Option::as_ref) {
                    Some(b) => b.as_f32().first().map(|&v| v as f64),
                    None => n
                        .attribute
                        .iter()
                        .find(|a| a.name == name)
                        .map(|a| a.f as f64),
                }
            };
            let (lo, hi) = (bound(1, "min"), bound(2, "max"));
            let clip = |v: f64| v.max(lo.unwrap_or(f64::MIN)).min(hi.unwrap_or(f64::MAX));
            let c = x()?;
            one(match &c.values {
                Values::I(v) => Const::ints(
                    c.dims.clone(),
                    v.iter().map(|&a| clip(a as f64) as i64).collect(),
                ),
                _ => map(c, clip),
            })
        }
        "Floor" => one(map(x()?, f64::floor)),
        "Reciprocal" => one(map(x()?, |v| 1.0 / v)),
        "Exp" => one(map(x()?, f64::exp)),
        "Neg" => {
            let c = x()?;
            one(match &c.values {
                Values::I(v) => Const::ints(c.dims.clone(), v.iter().map(|&a| -a).collect()),
                _ => map(c, |v| -v),
            })
        }
        "Not" => {
            let c = x()?;
            one(Const::ints(
                c.dims.clone(),
                c.as_i64().iter().map(|&v| (v == 0) as i64).collect(),
            ))
        }
        "Where" => {
            let (cond, a, b) = (x()?, need(ins, 1)?, need(ins, 2)?);
            // cond ? a : b, as cond * a + (1 - cond) * b with broadcasting.
            let pick_a = binary(
                cond,
                a,
                |c, v| if c != 0.0 { v } else { 0.0 },
                |c, v| Ok(if c != 0 { v } else { 0 }),
            )?;
            let pick_b = binary(
                cond,
                b,
                |c, v| if c == 0.0 { v } else { 0.0 },
                |c, v| Ok(if c == 0 { v } else { 0 }),
            )?;
            one(binary(&pick_a, &pick_b, |x, y| x + y, |x, y| Ok(x + y))?)
        }
        "Range" => {
            let first = |c: &Const| c.as_f32().first().copied().ok_or("an empty range bound");
            let (s, l, d) = (
                first(x()?)? as f64,
                first(need(ins, 1)?)? as f64,
                first(need(ins, 2)?)? as f64,
            );
            let all_int = ins
                .iter()
                .flatten()
                .all(|c| matches!(c.values, Values::I(_)));
            free_of_batch(&[s as i64, l as i64], "a range")?;
            if d == 0.0 {
                return Err("a range with step 0".into());
            }
            let count = ((l - s) / d).ceil().max(0.0);
            if count.is_nan() || count > MAX_FOLDED as f64 {
                return Err(format!("a range of {count} values"));
            }
            let count = count as usize;
            let v: Vec<f64> = (0..count).map(|i| s + i as f64 * d).collect();
            one(if all_int {
                Const::ints(vec![count], v.iter().map(|&x| x as i64).collect())
            } else {
                Const::floats(vec![count], v.iter().map(|&x| x as f32).collect())
            })
        }
        "ConstantOfShape" => {
            let shape = x()?.as_i64();
            free_of_batch(&shape, "a constant's shape")?;
            let dims: Vec<usize> = shape.iter().map(|&v| v.max(0) as usize).collect();
            let count = count(&dims)?;
            let value = n
                .attribute
                .iter()
                .find(|a| a.name == "value" && a.r#type == attr::TENSOR)
                .and_then(|a| a.t.as_ref());
            match value {
                Some(t)
                    if t.data_type == dtype::FLOAT
                        || t.data_type == dtype::DOUBLE
                        || t.data_type == dtype::FLOAT16 =>
                {
                    let v = super::tensor::decode(t, std::path::Path::new(""))
                        .map_err(|e| e.to_string())?
                        .as_f32()
                        .first()
                        .copied()
                        .unwrap_or(0.0);
                    one(Const::floats(dims, vec![v; count]))
                }
                Some(t) => {
                    let v = super::tensor::decode(t, std::path::Path::new(""))
                        .map_err(|e| e.to_string())?
                        .as_i64()
                        .first()
                        .copied()
                        .unwrap_or(0);
                    one(Const::ints(dims, vec![v; count]))
                }
                None => one(Const::floats(dims, vec![0.0; count])),
            }
        }
        "Expand" => {
            let c = x()?;
            let shape = need(ins, 1)?.as_i64();
            free_of_batch(&shape, "an expanded constant")?;
            let t: Vec<usize> = shape.iter().map(|&v| v.max(1) as usize).collect();
            let zeros = Const::ints(t.clone(), vec![0; count(&t)?]);
            let mut out = binary(c, &zeros, |a, _| a, |a, _| Ok(a))?;
            out.origin = c.origin.clone();
            one(out)
        }
        "Split" => {
            let c = x()?;
            let axis = axis_of(attr_i(n, "axis").unwrap_or(0), c.dims.len())?;
            let size = c.dims[axis];
            let sizes: Vec<usize> = match ins.get(1).and_then(Option::as_ref) {
                Some(s) => s.as_i64().iter().map(|&v| v as usize).collect(),
                None => {
                    let parts = n.output.len().max(1);
                    let each = size.div_ceil(parts);
                    (0..parts)
                        .map(|i| each.min(size.saturating_sub(i * each)))
                        .collect()
                }
            };
            if sizes.iter().sum::<usize>() != size {
                return Err(format!("split sizes {sizes:?} of an axis of {size}"));
            }
            let mut start = 0;
            let mut outs = Vec::new();
            for s in sizes {
                let pick: Vec<usize> = (start..start + s).collect();
                outs.push(take(c, axis, &pick));
                start += s;
            }
            Ok(outs)
        }
        other => Err(format!("the op `{other}` on constants is not folded")),
    }
}

impl Const {
    /// A comparison's result as integers (booleans).
    fn ints_if_bool(self) -> Const {
        Const::ints(self.dims.clone(), self.as_i64())
    }
}
