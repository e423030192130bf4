//! Everything the tracer needs about one code object, computed once on first
//! sight and cached: whether to trace it, its decoded instructions, the stack
//! depth at each offset (3.12+, see [`interp`]), and its names pre-hashed.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use super::decode::{decode, Instr};
use super::interp;
use super::key_text::{self, KeyText};
use super::keys::attr_key;
use super::ops::{method_use, MethodUse, OpTable};

/// Python run once per process or per *code object* (never per access):
/// which files are traced, and whose generated code is whose.
const HELPER: &std::ffi::CStr = cr#"
import sys, sysconfig, os

# Packages whose internal state is trusted to be thread-safe and whose
# threads communicate through the database: not explored (their cooperative
# locks and database statements still are). FRONTRUN_TRACE_PACKAGES=1
# explores them too.
TRUSTED = ("sqlalchemy", "django", "psycopg", "psycopg2", "psycopg_binary", "psycopg_c",
           "asgiref")

def untraced_packages():
    if os.environ.get("FRONTRUN_TRACE_PACKAGES", "") in ("1", "true", "yes"):
        return []
    return list(TRUSTED)

def skip_dirs():
    paths = sysconfig.get_paths()
    raw = {paths[k] for k in ("stdlib", "platstdlib") if k in paths}
    if os.environ.get("FRONTRUN_TRACE_PACKAGES", "") not in ("1", "true", "yes"):
        import site
        sites = {paths[k] for k in ("purelib", "platlib") if k in paths}
        sites |= set(getattr(site, "getsitepackages", lambda: [])())
        raw |= {os.path.join(s, p) for s in sites for p in TRUSTED}
    dirs = raw | {os.path.realpath(d) for d in raw}
    fr = sys.modules.get("frontrun")
    if fr is not None and getattr(fr, "__file__", None):
        d = os.path.dirname(fr.__file__)
        dirs |= {d, os.path.realpath(d)}
    return sorted(d.rstrip(os.sep) + os.sep for d in dirs)

def installed_dirs():
    # Where code that is not the user's lives: the standard library, every
    # site directory (whatever is installed there) and frontrun itself.
    import site
    paths = sysconfig.get_paths()
    raw = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    raw |= set(getattr(site, "getsitepackages", lambda: [])())
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if user_site:
        raw.add(user_site)
    fr = sys.modules.get("frontrun")
    if fr is not None and getattr(fr, "__file__", None):
        raw.add(os.path.dirname(fr.__file__))
    dirs = raw | {os.path.realpath(d) for d in raw}
    return sorted(d.rstrip(os.sep) + os.sep for d in dirs)

def module_file(globals_):
    # Generated code (`<... wrapper>`) belongs to the module that compiled it.
    try:
        name = globals_.get("__name__")
        if isinstance(name, str) and name.startswith("namedtuple_"):
            # collections.namedtuple's generated __new__ runs in a namespace
            # of its own, named after the tuple type.
            import collections
            return collections.__file__
        mod = sys.modules.get(name)
        f = getattr(mod, "__file__", None)
        return f if isinstance(f, str) else None
    except Exception:
        return None
"#;

/// A name from `co_names` or a closure variable, pre-hashed.
pub struct Name {
    /// The name as a Python string (for dict lookups without allocating).
    pub obj: Py<PyAny>,
    pub key: u64,
    pub text: String,
    pub method: MethodUse,
}

impl Name {
    fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let text: String = obj.extract()?;
        let key = attr_key(&text);
        key_text::remember_key(key, || Some(KeyText::Name(text.clone())));
        Ok(Name {
            obj: obj.clone().unbind(),
            key,
            method: method_use(&text),
            text,
        })
    }
}

/// The cached facts of one code object.
pub struct CodeInfo {
    /// Keeps the code object (and thus its address) alive while cached.
    pub code: Py<PyAny>,
    pub traced: bool,
    /// The user's code: not in the standard library, an installed package or
    /// frontrun. Explanations show the innermost such frame.
    pub user: bool,
    /// A generator or coroutine: its frame "returns" at every yield.
    pub suspends: bool,
    pub instrs: Vec<Instr>,
    /// Stack depth before each code unit (3.12+); -1 where unknown.
    pub depths: Vec<i32>,
    pub names: Vec<Name>,
    /// Closure-variable names by `LOAD_DEREF` argument.
    pub cells: Vec<Name>,
    /// `LOAD_DEREF` arguments from here on are free variables (cells created
    /// by an enclosing frame, hence possibly shared).
    pub free_start: usize,
    pub nlocalsplus: usize,
    pub ncellfree: usize,
    pub stacksize: u32,
    /// Site id per code unit, assigned on first emission (0 = none yet).
    pub sites: Vec<AtomicU64>,
}

/// Interpreter facts computed once.
pub struct Statics {
    pub table: OpTable,
    helper: Py<PyModule>,
    /// The standard library's and frontrun's directories (installed packages
    /// below them are traced unless trusted).
    pub skip_dirs: Vec<String>,
    installed_dirs: Vec<String>,
    /// Top-level names of the installed packages not traced (trusted).
    pub untraced_packages: Vec<String>,
}

static STATICS: OnceLock<Statics> = OnceLock::new();
static CACHE: LazyLock<Mutex<HashMap<usize, Arc<CodeInfo>>>> = LazyLock::new(Mutex::default);

/// Beyond this many code objects the cache starts over, so that a
/// long-lived process (a test session running thousands of explorations
/// over generated code) does not grow without bound. Entries hold their
/// code object, so a cached address is never reused while cached.
pub const MAX_CODES: usize = 4096;

/// Number of cached code objects (for the bounded-cache test).
pub fn cached_count() -> usize {
    CACHE.lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// Load the opcode table and the helper (idempotent).
pub fn statics(py: Python<'_>) -> PyResult<&'static Statics> {
    if let Some(s) = STATICS.get() {
        return Ok(s);
    }
    let dis = py.import("dis")?;
    // 3.12+ also lists pseudo-instructions (numbered from 256) that never
    // appear in bytecode.
    let opmap: HashMap<String, u32> = dis.getattr("opmap")?.extract()?;
    let opmap: HashMap<String, u8> = opmap
        .into_iter()
        .filter_map(|(k, v)| u8::try_from(v).ok().map(|v| (k, v)))
        .collect();
    let table = OpTable::from_opmap(&opmap).ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err(
            "dis.opmap has no EXTENDED_ARG: unsupported interpreter",
        )
    })?;
    let helper = PyModule::from_code(py, HELPER, c"<frontrun-tracer>", c"_frontrun_tracer_helper")?;
    let skip_dirs: Vec<String> = helper.getattr("skip_dirs")?.call0()?.extract()?;
    let untraced_packages: Vec<String> = helper.getattr("untraced_packages")?.call0()?.extract()?;
    let installed_dirs: Vec<String> = helper.getattr("installed_dirs")?.call0()?.extract()?;
    let _ = STATICS.set(Statics {
        table,
        helper: helper.unbind(),
        skip_dirs,
        installed_dirs,
        untraced_packages,
    });
    Ok(STATICS.get().expect("just set"))
}

/// Whether code from `filename` is user code to trace (not the standard
/// library, frontrun or, by default, installed packages).
pub fn is_traced_file(filename: &str, skip_dirs: &[String]) -> bool {
    if filename.starts_with('<') {
        return !filename.starts_with("<frozen");
    }
    !skip_dirs.iter().any(|d| {
        filename.strip_prefix(d.as_str()).is_some_and(|rest| {
            !rest.starts_with("site-packages/") && !rest.starts_with("dist-packages/")
        })
    })
}

/// Whether `filename` is the user's code: neither the standard library, an
/// installed package nor frontrun (see `installed_dirs`).
pub fn is_user_file(filename: &str, installed_dirs: &[String]) -> bool {
    if filename.starts_with('<') {
        return !filename.starts_with("<frozen");
    }
    !installed_dirs
        .iter()
        .any(|d| filename.starts_with(d.as_str()))
}

/// The cached facts for `code`, computing them on first sight.
pub fn info(py: Python<'_>, code: &Bound<'_, PyAny>) -> PyResult<Arc<CodeInfo>> {
    info_in(py, code, None)
}

/// [`info`], knowing the globals `code` runs with: code generated at run
/// time (a `<...>` file name) is judged by the file of the module that made
/// it, so a library's generated wrappers count as that library.
pub fn info_in(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    globals: Option<&Bound<'_, PyAny>>,
) -> PyResult<Arc<CodeInfo>> {
    let addr = code.as_ptr() as usize;
    if let Some(i) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).get(&addr) {
        return Ok(i.clone());
    }
    let info = Arc::new(compute(py, code, globals)?);
    let dropped = {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        let old = (cache.len() >= MAX_CODES).then(|| std::mem::take(&mut *cache));
        cache.insert(addr, info.clone());
        old
    };
    // Released outside the lock (GIL held): dropping code objects may free
    // them.
    drop(dropped);
    Ok(info)
}

fn compute(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    globals: Option<&Bound<'_, PyAny>>,
) -> PyResult<CodeInfo> {
    let st = statics(py)?;
    let mut filename: String = code.getattr("co_filename")?.extract()?;
    if filename.starts_with('<') && !filename.starts_with("<frozen") {
        if let Some(g) = globals {
            let helper = st.helper.bind(py);
            if let Ok(Some(f)) = helper
                .getattr("module_file")
                .and_then(|m| m.call1((g,)))
                .and_then(|f| f.extract::<Option<String>>())
            {
                filename = f;
            }
        }
    }
    let mut info = CodeInfo {
        code: code.clone().unbind(),
        traced: false,
        user: is_user_file(&filename, &st.installed_dirs),
        suspends: false,
        instrs: Vec::new(),
        depths: Vec::new(),
        names: Vec::new(),
        cells: Vec::new(),
        free_start: 0,
        nlocalsplus: 0,
        ncellfree: 0,
        stacksize: 0,
        sites: Vec::new(),
    };
    // Code that cannot be analysed is left untraced rather than failing the
    // user's program from inside the trace function.
    if is_traced_file(&filename, &st.skip_dirs) && analyse(code, st, &mut info).is_ok() {
        info.traced = true;
        info.sites = (0..info.instrs.len()).map(|_| AtomicU64::new(0)).collect();
    }
    Ok(info)
}

fn analyse(code: &Bound<'_, PyAny>, st: &Statics, info: &mut CodeInfo) -> PyResult<()> {
    let bytes = code.getattr("co_code")?;
    info.instrs = decode(
        bytes.downcast::<PyBytes>()?.as_bytes(),
        &st.table,
        interp::PREFIX_EVENTS,
    );
    if interp::STATIC_STACK_DEPTH {
        info.depths = interp::static_depths(code)?;
    }
    for n in code.getattr("co_names")?.downcast::<PyTuple>()?.iter() {
        info.names.push(Name::new(&n)?);
    }
    let plus = interp::localsplus(code)?;
    let nfree = code.getattr("co_freevars")?.len()?;
    info.ncellfree = code.getattr("co_cellvars")?.len()? + nfree;
    info.nlocalsplus = if interp::LOCALSPLUS { plus.len() } else { 0 };
    info.free_start = plus.len().saturating_sub(nfree);
    info.cells = plus.iter().map(Name::new).collect::<PyResult<_>>()?;
    info.stacksize = code.getattr("co_stacksize")?.extract()?;
    // CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR
    let flags: u32 = code.getattr("co_flags")?.extract()?;
    info.suspends = flags & (0x20 | 0x80 | 0x200) != 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{is_traced_file, is_user_file};

    #[test]
    fn user_files() {
        let installed = vec![
            "/usr/lib/python3.11/".to_string(),
            "/venv/lib/python3.11/site-packages/".to_string(),
        ];
        assert!(is_user_file("/home/u/app.py", &installed));
        assert!(is_user_file("<string>", &installed));
        assert!(!is_user_file("<frozen runpy>", &installed));
        assert!(!is_user_file(
            "/usr/lib/python3.11/threading.py",
            &installed
        ));
        assert!(!is_user_file(
            "/venv/lib/python3.11/site-packages/cachetools/__init__.py",
            &installed
        ));
    }

    #[test]
    fn filter() {
        let skip = vec![
            "/usr/lib/python3.11/".to_string(),
            "/src/frontrun/".to_string(),
        ];
        assert!(!is_traced_file("/usr/lib/python3.11/threading.py", &skip));
        assert!(is_traced_file(
            "/usr/lib/python3.11/site-packages/sqlalchemy/orm.py",
            &skip
        ));
        assert!(!is_traced_file("/src/frontrun/dpor.py", &skip));
        assert!(is_traced_file("/home/u/test_x.py", &skip));
        assert!(!is_traced_file("<frozen importlib._bootstrap>", &skip));
        assert!(is_traced_file("<string>", &skip));
    }
}
