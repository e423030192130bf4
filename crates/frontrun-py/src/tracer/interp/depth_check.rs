//! The cross-check of the static stack-depth derivation (what 3.12+ relies
//! on, where frames do not record their depth) against the live depth 3.11
//! frames record, at every opcode event of a workload run over the standard
//! library's code. Only 3.11 has both: 3.10 has no exception table to derive
//! from, 3.12+ no live depth to compare with.

use pyo3::prelude::*;

/// What a passing cross-check compared.
#[derive(Clone, Copy, Debug, Default)]
pub struct DepthReport {
    /// Distinct code objects that ran under the check.
    pub codes: usize,
    /// Opcode events whose two depths were compared.
    pub events: u64,
}

/// Python run under the check: imports happen when the module is made (not
/// traced); `run()` drives a broad sample of pure-Python standard-library
/// code, including generators, coroutines, `with`, `try`/`except` handlers
/// and comprehensions, so every kind of stack effect and exception-table
/// entry is met.
#[cfg(all(Py_3_11, not(Py_3_12)))]
const WORKLOAD: &std::ffi::CStr = cr#"
import argparse, ast, asyncio, calendar, collections, configparser, contextlib, copy
import dataclasses, difflib, email, email.utils, enum, fractions, functools, inspect, io
import ipaddress, json, pprint, random, re, shlex, statistics, string, textwrap, tokenize
import traceback, typing, urllib.parse, warnings
from re import _compiler as re_compiler

SOURCE = '''
import os
def f(a, *args, b=2, **kw):
    """doc"""
    x = [i * 2 for i in range(a) if i % 3]
    y = {k: v for k, v in kw.items()}
    with open(os.devnull) as fh, open(os.devnull) as gh:
        pass
    try:
        return x[b]
    except (IndexError, KeyError) as e:
        raise ValueError("no") from e
    finally:
        del y
async def g():
    async with lock:
        await h()
    return [z async for z in agen()]
class C(Base, metaclass=M):
    attr: int = 3
    def m(self): return lambda q=1: q ** 2 if q else -q
match point:
    case (0, y) | [y, 0]: pass
    case {"k": v, **rest}: pass
    case Point(x=0): pass
    case _: pass
'''

@dataclasses.dataclass(order=True)
class Pair:
    a: int
    b: str = "x"
    tags: list = dataclasses.field(default_factory=list)

class Colour(enum.Enum):
    RED = 1
    GREEN = 2

class Flags(enum.IntFlag):
    A = 1
    B = 2

@contextlib.contextmanager
def managed(log):
    log.append("in")
    try:
        yield len(log)
    finally:
        log.append("out")

def gen(n):
    for i in range(n):
        try:
            got = yield i
        except KeyError:
            got = None
        if got:
            return got

async def worker(q, out):
    while True:
        item = await q.get()
        if item is None:
            return
        await asyncio.sleep(0)
        out.append(item * 2)

async def main():
    q = asyncio.Queue()
    out = []
    tasks = [asyncio.create_task(worker(q, out)) for _ in range(3)]
    for i in range(10):
        await q.put(i)
    for _ in tasks:
        await q.put(None)
    await asyncio.gather(*tasks)
    try:
        await asyncio.wait_for(asyncio.sleep(10), 0.001)
    except asyncio.TimeoutError:
        pass
    return sorted(out)

def run():
    data = {"a": [1, 2.5, None, True, "\u00e9"], "b": {"c": [{"d": i} for i in range(5)]}}
    text = json.dumps(data, indent=2, sort_keys=True)
    assert json.loads(text) == data
    try:
        json.loads("{bad")
    except json.JSONDecodeError:
        pass
    for pattern in (r"(?P<x>a+|b{2,3})[^c-e]\d*(?=z)", r"(?i)^\w+@[\w.]+$", r"(a|b)*?c{1,}"):
        re_compiler.compile(pattern, 0).match("aabbbz")
    textwrap.fill("word " * 60, width=30)
    textwrap.dedent("    a\n      b\n")
    matcher = difflib.SequenceMatcher(None, "the quick brown fox", "the quack brawn fix")
    matcher.get_opcodes()
    list(difflib.unified_diff(["a\n", "b\n", "c\n"], ["a\n", "c\n", "d\n"]))
    pairs = sorted([Pair(2, "y"), Pair(1), Pair(2, "a")])
    repr(pairs), dataclasses.asdict(pairs[0]), dataclasses.replace(pairs[1], b="z")
    list(Colour), Colour(1), Colour["GREEN"], Flags.A | Flags.B
    inspect.signature(textwrap.fill)
    inspect.getmembers(Pair)
    tree = ast.parse(SOURCE)
    ast.unparse(tree)
    ast.dump(tree)
    list(ast.walk(tree))
    ast.literal_eval("[1, (2, 3), {'a': 4}, -5, 1+2j]")
    pprint.pformat({"k%d" % i: list(range(i)) for i in range(12)}, width=40)
    string.Template("$a ${b} $$").safe_substitute(a=1)
    string.Formatter().format("{0!r:>10} {x}", 1, x=2)
    total = fractions.Fraction(3, 4) + fractions.Fraction("1/3")
    statistics.mean([1, 2, 3, 4]), statistics.median([3, 1, 2]), statistics.stdev([1.0, 2.0, 4.0])
    total.limit_denominator(10)
    parser = argparse.ArgumentParser(prog="p", exit_on_error=False)
    parser.add_argument("--n", type=int, default=1)
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("go").add_argument("-v", action="count")
    parser.parse_args(["--n", "3", "go", "-v", "-v"])
    try:
        parser.parse_args(["--n", "notint"])
    except argparse.ArgumentError:
        pass
    parser.format_help()
    config = configparser.ConfigParser()
    config.read_string("[s]\na = 1\nb = ${a}2\n[t]\nc = yes\n")
    config.getboolean("t", "c"), dict(config["s"])
    list(tokenize.generate_tokens(io.StringIO(SOURCE).readline))
    net = ipaddress.ip_network("10.0.0.0/28")
    list(net.hosts()), ipaddress.ip_address("::1").exploded
    try:
        ipaddress.ip_address("999.1.1.1")
    except ValueError:
        pass
    parts = urllib.parse.urlsplit("https://u:p@example.com:8080/a/b?x=1&y=2#f")
    urllib.parse.parse_qs(parts.query), urllib.parse.quote("a b/c"), urllib.parse.urljoin("http://a/b/c", "../d")
    shlex.split("a 'b c' \"d e\" f\\ g"), shlex.quote("it's")
    calendar.TextCalendar().formatmonth(2024, 2)
    msg = email.message_from_string("From: A <a@b.c>\nSubject: hi\n\nbody\n")
    email.utils.parseaddr(msg["From"]), msg.get_payload()
    counts = collections.Counter("mississippi")
    counts.most_common(2), counts + collections.Counter("sip")
    point_type = collections.namedtuple("Point", "x y")
    point_type(1, 2)._replace(y=3)
    ordered = collections.OrderedDict.fromkeys("abc")
    ordered.move_to_end("a")
    cached = functools.lru_cache(maxsize=4)(lambda n: n * n)
    [cached(i % 6) for i in range(20)]
    functools.reduce(lambda a, b: a + b, range(10))
    log = []
    with managed(log) as n, contextlib.suppress(KeyError):
        {}["missing"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(managed(log))
        stack.callback(log.append, n)
    g = gen(5)
    next(g), g.send(0), g.throw(KeyError)
    try:
        g.send(7)
    except StopIteration:
        pass
    copy.deepcopy({"a": [data, pairs], "b": (1, [2])})
    rng = random.Random(1)
    rng.sample(range(100), 5), rng.choice("abc"), rng.shuffle(list(range(10)))
    try:
        1 / 0
    except ZeroDivisionError:
        traceback.format_exc()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        warnings.warn("w")
    typing.get_type_hints(Pair)
    asyncio.run(main())
"#;

/// Run the workload (or `workload`) with a trace function that compares, at
/// every opcode event, the live stack depth with `depths(code)` (default:
/// the static derivation); any difference is an error listing each one.
#[cfg(all(Py_3_11, not(Py_3_12)))]
pub fn check_stack_depths(
    py: Python<'_>,
    depths: Option<Bound<'_, PyAny>>,
) -> PyResult<DepthReport> {
    live::check(py, depths)
}

/// Only 3.11 has both depths; elsewhere there is nothing to compare.
#[cfg(not(all(Py_3_11, not(Py_3_12))))]
pub fn check_stack_depths(
    _py: Python<'_>,
    _depths: Option<Bound<'_, PyAny>>,
) -> PyResult<DepthReport> {
    Err(pyo3::exceptions::PyNotImplementedError::new_err(
        "the stack-depth cross-check needs CPython 3.11 (the only version \
         whose frames record the depth and whose code has an exception table)",
    ))
}

#[cfg(all(Py_3_11, not(Py_3_12)))]
mod live {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::os::raw::c_int;
    use std::panic::AssertUnwindSafe;

    use pyo3::exceptions::PyRuntimeError;
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::PyModule;

    use super::super::frame::{FrameView, StackDepth};
    use super::super::{localsplus, static_depths};
    use super::{DepthReport, WORKLOAD};

    /// Mismatches listed in the error beyond which only the count is given.
    const SHOWN: usize = 20;

    struct Code {
        /// Keeps the code object (and its address) alive while cached.
        _code: Py<PyAny>,
        name: String,
        depths: Vec<i32>,
        nlocalsplus: usize,
        stacksize: u32,
    }

    #[derive(Default)]
    struct Checker {
        depths: Option<Py<PyAny>>,
        codes: HashMap<usize, Code>,
        events: u64,
        mismatches: Vec<String>,
        mismatch_count: usize,
        error: Option<PyErr>,
    }

    thread_local! {
        static CHECKER: RefCell<Option<Checker>> = const { RefCell::new(None) };
    }

    pub fn check(py: Python<'_>, depths: Option<Bound<'_, PyAny>>) -> PyResult<DepthReport> {
        let module = PyModule::from_code(
            py,
            WORKLOAD,
            c"<frontrun-depth-workload>",
            c"_frontrun_depth_workload",
        )?;
        let run = module.getattr("run")?;
        let sys = py.import("sys")?;
        let previous = sys.call_method0("gettrace")?;
        CHECKER.with(|c| {
            *c.borrow_mut() = Some(Checker {
                depths: depths.map(Bound::unbind),
                ..Checker::default()
            });
        });
        // SAFETY: GIL held; `trace` matches `Py_tracefunc` and takes no
        // argument object.
        unsafe { ffi::PyEval_SetTrace(Some(trace), std::ptr::null_mut()) };
        let ran = run.call0();
        // SAFETY: as above; NULL removes the trace function.
        unsafe { ffi::PyEval_SetTrace(None, std::ptr::null_mut()) };
        if !previous.is_none() {
            sys.call_method1("settrace", (previous,))?;
        }
        let checker = CHECKER.with(|c| c.borrow_mut().take()).unwrap_or_default();
        ran?;
        if let Some(e) = checker.error {
            return Err(e);
        }
        if checker.mismatch_count > 0 {
            let more = checker
                .mismatch_count
                .saturating_sub(checker.mismatches.len());
            let tail = if more > 0 {
                format!("\n  … and {more} more")
            } else {
                String::new()
            };
            return Err(PyRuntimeError::new_err(format!(
                "the static stack-depth analysis (used on 3.12+) disagrees with the \
                 live depth 3.11 records at {} of {} opcode events:\n  {}{tail}",
                checker.mismatch_count,
                checker.events,
                checker.mismatches.join("\n  ")
            )));
        }
        Ok(DepthReport {
            codes: checker.codes.len(),
            events: checker.events,
        })
    }

    /// # Safety
    /// Called by CPython with the GIL held and a live `frame`.
    unsafe extern "C" fn trace(
        _obj: *mut ffi::PyObject,
        frame: *mut ffi::PyFrameObject,
        what: c_int,
        _arg: *mut ffi::PyObject,
    ) -> c_int {
        if frame.is_null() || !matches!(what, ffi::PyTrace_CALL | ffi::PyTrace_OPCODE) {
            return 0;
        }
        // SAFETY: CPython calls trace functions with the GIL held.
        let py = unsafe { Python::assume_gil_acquired() };
        // SAFETY: the live frame of this event; the view does not escape.
        let view = unsafe { FrameView::new(frame) };
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if what == ffi::PyTrace_CALL {
                view.write_trace_flags(false, Some(true));
                return Ok(());
            }
            compare(py, &view)
        }));
        let failure = match outcome {
            Ok(Ok(())) => return 0,
            Ok(Err(e)) => e,
            Err(_) => PyRuntimeError::new_err("frontrun depth check: internal panic"),
        };
        CHECKER.with(|c| {
            if let Some(ch) = c.borrow_mut().as_mut() {
                ch.error.get_or_insert(failure);
            }
        });
        0
    }

    fn compare(py: Python<'_>, view: &FrameView) -> PyResult<()> {
        let Some(unit) = view.unit() else {
            return Ok(());
        };
        let addr = view.code() as usize;
        let known = CHECKER.with(|c| {
            c.borrow()
                .as_ref()
                .is_some_and(|ch| ch.codes.contains_key(&addr))
        });
        if !known {
            // SAFETY: the running frame holds a strong reference to its code.
            let code = unsafe { Bound::from_borrowed_ptr(py, addr as *mut ffi::PyObject) };
            let custom = CHECKER.with(|c| {
                c.borrow()
                    .as_ref()
                    .and_then(|ch| ch.depths.as_ref().map(|d| d.clone_ref(py)))
            });
            let depths: Vec<i32> = match custom {
                Some(f) => f.bind(py).call1((&code,))?.extract()?,
                None => static_depths(&code)?,
            };
            let entry = Code {
                name: format!(
                    "{} ({}:{})",
                    code.getattr("co_qualname")?,
                    code.getattr("co_filename")?,
                    code.getattr("co_firstlineno")?
                ),
                nlocalsplus: localsplus(&code)?.len(),
                stacksize: code.getattr("co_stacksize")?.extract()?,
                depths,
                _code: code.unbind(),
            };
            CHECKER.with(|c| {
                if let Some(ch) = c.borrow_mut().as_mut() {
                    ch.codes.insert(addr, entry);
                }
            });
        }
        CHECKER.with(|c| {
            let mut guard = c.borrow_mut();
            let Some(ch) = guard.as_mut() else { return };
            let Some(code) = ch.codes.get(&addr) else {
                return;
            };
            let live = view
                .stack(StackDepth::Live, code.nlocalsplus, code.stacksize)
                .map(|s| i64::from(s.depth()));
            let derived = code.depths.get(unit).map(|&d| i64::from(d));
            ch.events += 1;
            if live.is_none() || live != derived {
                ch.mismatch_count += 1;
                if ch.mismatches.len() < SHOWN {
                    let show =
                        |d: Option<i64>| d.map_or_else(|| "unknown".into(), |d| d.to_string());
                    let line = format!(
                        "{} offset {}: live {}, derived {}",
                        code.name,
                        unit * 2,
                        show(live),
                        show(derived)
                    );
                    ch.mismatches.push(line);
                }
            }
        });
        Ok(())
    }
}
