//! Python parameters of an `execute` call as `frontrun-sql` parameters.

use frontrun_sql::Param;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};

/// The parameters of one call: positional values and/or named ones.
#[derive(Default)]
pub struct CallParams {
    pub positional: Vec<Param>,
    pub named: Vec<(String, Param)>,
}

/// A mapping gives named parameters (`%(name)s`, `:name`); any other
/// sequence gives positional ones (`%s`, `?`, `$1`); `None` gives none.
pub fn convert(params: Option<&Bound<'_, PyAny>>) -> PyResult<CallParams> {
    let mut out = CallParams::default();
    let Some(p) = params else {
        return Ok(out);
    };
    if p.is_none() {
        return Ok(out);
    }
    if let Ok(d) = p.downcast::<PyDict>() {
        for (k, v) in d.iter() {
            out.named.push((k.str()?.to_string(), value(&v, 0)));
        }
    } else if let Ok(m) = p.downcast::<PyMapping>() {
        for item in m.items()?.iter() {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            out.named.push((k.str()?.to_string(), value(&v, 0)));
        }
    } else if p.is_instance_of::<PyString>() {
        // A bare string is a common mistake for a 1-tuple; the driver will
        // reject it too, so it pins nothing here.
        out.positional.push(Param::Other);
    } else {
        for v in p.try_iter()? {
            out.positional.push(value(&v?, 0));
        }
    }
    Ok(out)
}

/// Nested sequences deeper than this are not pinned (psycopg adapts one
/// level: a list to an array, a tuple to `IN (…)`).
const MAX_DEPTH: usize = 2;

fn value(v: &Bound<'_, PyAny>, depth: usize) -> Param {
    if v.is_none() {
        Param::Null
    } else if let Ok(b) = v.downcast::<PyBool>() {
        Param::Bool(b.is_true())
    } else if v.is_instance_of::<PyInt>() {
        v.extract::<i64>().map_or(Param::Other, Param::Int)
    } else if let Ok(f) = v.downcast::<PyFloat>() {
        Param::Float(f.value())
    } else if let Ok(s) = v.downcast::<PyString>() {
        s.to_str()
            .map_or(Param::Other, |s| Param::Text(s.to_owned()))
    } else if depth < MAX_DEPTH && (v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>()) {
        v.try_iter().map_or(Param::Other, |it| {
            Param::List(
                it.map(|x| x.map_or(Param::Other, |x| value(&x, depth + 1)))
                    .collect(),
            )
        })
    } else {
        Param::Other
    }
}
