//! What opaque code does to the shared objects handed to it.
//!
//! Opaque code is code whose own steps the tracer cannot see: a builtin
//! function or method, a type slot of a builtin type, a C-extension callable,
//! or a Python function from untraced code (the standard library). When such
//! a callee receives a shared object, the call itself is the access, and it
//! is recorded before the call. This table says which access, by the callee's
//! qualified name (`module.qualname`, as `builtins.len` or
//! `builtins.list.append`). A name not listed is a [`Effect::Write`] of every
//! shared argument: being conservative costs executions, never soundness.

/// How an opaque callee touches its shared arguments (bound `self`
/// included, as the first argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Touches no argument's state (`id`, `isinstance`, `type`…).
    Pure,
    /// Reads every argument as a whole (`sum`, `sorted`…), and the objects
    /// a container argument holds (`sorted([a.l, b.l])` compares the lists).
    Read,
    /// Reads only the size of its arguments (`len`, `bool`), not the
    /// objects they hold.
    Size,
    /// May change every argument (unknown callees).
    Write,
    /// Changes the first argument (`self`) without reading the objects it
    /// holds, reads the others (`list.append`, `dict.update`…).
    MutateFirst,
    /// Returns an iterator or view over its arguments (`iter`, `enumerate`,
    /// `zip`, `dict.items`…): reads them, and each step of the result is a
    /// read of them.
    Iterate,
    /// Returns an object sharing the first argument's storage
    /// (`memoryview`): accesses through it are accesses to the argument.
    Alias,
    /// `getattr(o, name[, default])` and `hasattr(o, name)`: reads `o.name`.
    GetAttr,
    /// `setattr(o, name, v)` and `object.__setattr__(o, name, v)`.
    SetAttr,
    /// `delattr(o, name)` and `object.__delattr__(o, name)`.
    DelAttr,
    /// `vars(o)`: the result is `o`'s attribute dict, its items are `o`'s
    /// attributes.
    Vars,
    /// Standard-library Python code this table does not describe
    /// (`statistics.mean`, `collections.Counter.subtract`, `copy.deepcopy`):
    /// it may change every argument, and its own steps (each step of an
    /// iteration included) are not scheduling points, although real threads
    /// can switch between them. Handing it a shared container therefore
    /// makes a pass inconclusive ([`note_untraced`]).
    Untraced,
    /// Python code of an untraced package (SQLAlchemy, Django…) that this
    /// table does not describe: it may change its arguments, except classes
    /// and the package's own objects whose sharing is accounted for (see
    /// `library`), which it only reads. A mapped class handed to
    /// `select(Account)` is configuration the package reads (built in the
    /// settling run), and an `Engine` handed to `Session(engine)` is
    /// internally synchronised: writing them whole would order every such
    /// call against every read of the class, for nothing.
    Package,
}

/// Set when a shared container was handed to [`Effect::Untraced`] code
/// since the last [`take_untraced`].
static UNTRACED_CALL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Record that untraced standard-library code was given a shared container.
pub fn note_untraced() {
    UNTRACED_CALL.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`note_untraced`] was called since the last call; clears it.
pub fn take_untraced() -> bool {
    UNTRACED_CALL.swap(false, std::sync::atomic::Ordering::Relaxed)
}

/// What a pass is told when [`note_untraced`] was called.
pub const UNTRACED_WHAT: &str = "a shared container handed to standard-library Python code that \
     frontrun does not trace (its own steps, iteration included, are not scheduling points)";

/// The known opaque callees, by qualified name. Each entry has a test below.
pub const TABLE: &[(&str, Effect)] = &[
    // Identity and type queries: no argument state is read.
    ("builtins.id", Effect::Pure),
    ("builtins.type", Effect::Pure),
    ("builtins.isinstance", Effect::Pure),
    ("builtins.issubclass", Effect::Pure),
    ("builtins.callable", Effect::Pure),
    ("builtins.super", Effect::Pure),
    // Standard-library Python code that keeps references to its arguments
    // without reading them, and is scheduled by its cooperative primitives.
    ("threading.Thread", Effect::Pure),
    ("threading.Thread.__init__", Effect::Pure),
    ("queue.Queue.put", Effect::MutateFirst),
    ("queue.Queue.put_nowait", Effect::MutateFirst),
    ("queue.Queue.get", Effect::MutateFirst),
    ("queue.Queue.get_nowait", Effect::MutateFirst),
    // Only read the flag (under the condition's lock, whose own events
    // order them with `set`/`clear`).
    ("threading.Event.wait", Effect::Read),
    ("threading.Event.is_set", Effect::Read),
    // Readers of their arguments.
    ("builtins.len", Effect::Size),
    ("builtins.sum", Effect::Read),
    ("builtins.min", Effect::Read),
    ("builtins.max", Effect::Read),
    ("builtins.sorted", Effect::Read),
    ("builtins.any", Effect::Read),
    ("builtins.all", Effect::Read),
    ("builtins.list", Effect::Read),
    ("builtins.tuple", Effect::Read),
    ("builtins.set", Effect::Read),
    ("builtins.frozenset", Effect::Read),
    ("builtins.dict", Effect::Read),
    ("builtins.bytes", Effect::Read),
    ("builtins.bytearray", Effect::Read),
    ("builtins.str", Effect::Read),
    ("builtins.repr", Effect::Read),
    ("builtins.format", Effect::Read),
    ("builtins.ascii", Effect::Read),
    ("builtins.hash", Effect::Read),
    ("builtins.bool", Effect::Size),
    ("builtins.print", Effect::Read),
    ("builtins.str.join", Effect::Read),
    ("builtins.str.format", Effect::Read),
    ("builtins.bytes.join", Effect::Read),
    ("builtins.list.copy", Effect::Read),
    ("builtins.list.count", Effect::Read),
    ("builtins.list.index", Effect::Read),
    ("builtins.dict.copy", Effect::Read),
    ("builtins.dict.get", Effect::Read),
    ("builtins.set.copy", Effect::Read),
    ("builtins.set.union", Effect::Read),
    ("builtins.set.intersection", Effect::Read),
    ("builtins.set.difference", Effect::Read),
    ("builtins.set.issubset", Effect::Read),
    ("builtins.set.issuperset", Effect::Read),
    ("builtins.set.isdisjoint", Effect::Read),
    ("copy.copy", Effect::Read),
    ("json.dumps", Effect::Read),
    ("pickle.dumps", Effect::Read),
    ("_pickle.dumps", Effect::Read),
    ("operator.contains", Effect::Read),
    ("operator.getitem", Effect::Read),
    ("_operator.contains", Effect::Read),
    ("_operator.getitem", Effect::Read),
    // Mutators of their first argument.
    ("builtins.list.append", Effect::MutateFirst),
    ("builtins.list.extend", Effect::MutateFirst),
    ("builtins.list.insert", Effect::MutateFirst),
    ("builtins.list.pop", Effect::MutateFirst),
    // `remove` and `sort` also compare the objects the list holds.
    ("builtins.list.remove", Effect::Write),
    ("builtins.list.clear", Effect::MutateFirst),
    ("builtins.list.sort", Effect::Write),
    ("builtins.list.reverse", Effect::MutateFirst),
    ("builtins.dict.update", Effect::MutateFirst),
    ("builtins.dict.setdefault", Effect::MutateFirst),
    ("builtins.dict.pop", Effect::MutateFirst),
    ("builtins.dict.popitem", Effect::MutateFirst),
    ("builtins.dict.clear", Effect::MutateFirst),
    ("builtins.set.add", Effect::MutateFirst),
    ("builtins.set.discard", Effect::MutateFirst),
    ("builtins.set.remove", Effect::MutateFirst),
    ("builtins.set.pop", Effect::MutateFirst),
    ("builtins.set.clear", Effect::MutateFirst),
    ("builtins.set.update", Effect::MutateFirst),
    ("heapq.heappush", Effect::MutateFirst),
    ("heapq.heappop", Effect::MutateFirst),
    ("_heapq.heappush", Effect::MutateFirst),
    ("_heapq.heappop", Effect::MutateFirst),
    ("operator.setitem", Effect::MutateFirst),
    ("operator.delitem", Effect::MutateFirst),
    ("_operator.setitem", Effect::MutateFirst),
    ("_operator.delitem", Effect::MutateFirst),
    // Iterators and views: each step reads the container.
    ("builtins.iter", Effect::Iterate),
    ("builtins.next", Effect::Read),
    ("builtins.enumerate", Effect::Iterate),
    ("builtins.zip", Effect::Iterate),
    ("builtins.reversed", Effect::Iterate),
    ("builtins.map", Effect::Iterate),
    ("builtins.filter", Effect::Iterate),
    ("builtins.dict.keys", Effect::Iterate),
    ("builtins.dict.values", Effect::Iterate),
    ("builtins.dict.items", Effect::Iterate),
    ("itertools.chain", Effect::Iterate),
    ("itertools.islice", Effect::Iterate),
    // Storage sharing.
    ("builtins.memoryview", Effect::Alias),
    // Attribute access by name.
    ("builtins.getattr", Effect::GetAttr),
    ("builtins.hasattr", Effect::GetAttr),
    ("builtins.setattr", Effect::SetAttr),
    ("builtins.delattr", Effect::DelAttr),
    ("builtins.object.__getattribute__", Effect::GetAttr),
    ("builtins.object.__setattr__", Effect::SetAttr),
    ("builtins.object.__delattr__", Effect::DelAttr),
    ("builtins.vars", Effect::Vars),
];

/// Whether the table describes the callee named `name`.
pub fn known(name: &str) -> bool {
    TABLE.iter().any(|(n, _)| *n == name)
}

/// The effect of the opaque callee named `name` (`module.qualname`).
///
/// Slot wrappers bound to an instance (`o.__setattr__`) are named after the
/// instance's class, so the attribute slots are also matched by their last
/// component.
pub fn effect_of(name: &str) -> Effect {
    if let Some((_, e)) = TABLE.iter().find(|(n, _)| *n == name) {
        return *e;
    }
    match name.rsplit('.').next() {
        Some("__getattribute__" | "__getattr__") => Effect::GetAttr,
        Some("__setattr__") => Effect::SetAttr,
        Some("__delattr__") => Effect::DelAttr,
        _ => Effect::Write,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One expectation per table entry, written out independently of the
    /// table so that an accidental edit of either is caught.
    const EXPECTED: &[(&str, Effect)] = &[
        ("builtins.id", Effect::Pure),
        ("builtins.type", Effect::Pure),
        ("builtins.isinstance", Effect::Pure),
        ("builtins.issubclass", Effect::Pure),
        ("builtins.callable", Effect::Pure),
        ("builtins.super", Effect::Pure),
        ("threading.Thread", Effect::Pure),
        ("threading.Thread.__init__", Effect::Pure),
        ("queue.Queue.put", Effect::MutateFirst),
        ("queue.Queue.put_nowait", Effect::MutateFirst),
        ("queue.Queue.get", Effect::MutateFirst),
        ("queue.Queue.get_nowait", Effect::MutateFirst),
        ("threading.Event.wait", Effect::Read),
        ("threading.Event.is_set", Effect::Read),
        ("builtins.len", Effect::Size),
        ("builtins.sum", Effect::Read),
        ("builtins.min", Effect::Read),
        ("builtins.max", Effect::Read),
        ("builtins.sorted", Effect::Read),
        ("builtins.any", Effect::Read),
        ("builtins.all", Effect::Read),
        ("builtins.list", Effect::Read),
        ("builtins.tuple", Effect::Read),
        ("builtins.set", Effect::Read),
        ("builtins.frozenset", Effect::Read),
        ("builtins.dict", Effect::Read),
        ("builtins.bytes", Effect::Read),
        ("builtins.bytearray", Effect::Read),
        ("builtins.str", Effect::Read),
        ("builtins.repr", Effect::Read),
        ("builtins.format", Effect::Read),
        ("builtins.ascii", Effect::Read),
        ("builtins.hash", Effect::Read),
        ("builtins.bool", Effect::Size),
        ("builtins.print", Effect::Read),
        ("builtins.str.join", Effect::Read),
        ("builtins.str.format", Effect::Read),
        ("builtins.bytes.join", Effect::Read),
        ("builtins.list.copy", Effect::Read),
        ("builtins.list.count", Effect::Read),
        ("builtins.list.index", Effect::Read),
        ("builtins.dict.copy", Effect::Read),
        ("builtins.dict.get", Effect::Read),
        ("builtins.set.copy", Effect::Read),
        ("builtins.set.union", Effect::Read),
        ("builtins.set.intersection", Effect::Read),
        ("builtins.set.difference", Effect::Read),
        ("builtins.set.issubset", Effect::Read),
        ("builtins.set.issuperset", Effect::Read),
        ("builtins.set.isdisjoint", Effect::Read),
        ("copy.copy", Effect::Read),
        ("json.dumps", Effect::Read),
        ("pickle.dumps", Effect::Read),
        ("_pickle.dumps", Effect::Read),
        ("operator.contains", Effect::Read),
        ("operator.getitem", Effect::Read),
        ("_operator.contains", Effect::Read),
        ("_operator.getitem", Effect::Read),
        ("builtins.list.append", Effect::MutateFirst),
        ("builtins.list.extend", Effect::MutateFirst),
        ("builtins.list.insert", Effect::MutateFirst),
        ("builtins.list.pop", Effect::MutateFirst),
        ("builtins.list.remove", Effect::Write),
        ("builtins.list.clear", Effect::MutateFirst),
        ("builtins.list.sort", Effect::Write),
        ("builtins.list.reverse", Effect::MutateFirst),
        ("builtins.dict.update", Effect::MutateFirst),
        ("builtins.dict.setdefault", Effect::MutateFirst),
        ("builtins.dict.pop", Effect::MutateFirst),
        ("builtins.dict.popitem", Effect::MutateFirst),
        ("builtins.dict.clear", Effect::MutateFirst),
        ("builtins.set.add", Effect::MutateFirst),
        ("builtins.set.discard", Effect::MutateFirst),
        ("builtins.set.remove", Effect::MutateFirst),
        ("builtins.set.pop", Effect::MutateFirst),
        ("builtins.set.clear", Effect::MutateFirst),
        ("builtins.set.update", Effect::MutateFirst),
        ("heapq.heappush", Effect::MutateFirst),
        ("heapq.heappop", Effect::MutateFirst),
        ("_heapq.heappush", Effect::MutateFirst),
        ("_heapq.heappop", Effect::MutateFirst),
        ("operator.setitem", Effect::MutateFirst),
        ("operator.delitem", Effect::MutateFirst),
        ("_operator.setitem", Effect::MutateFirst),
        ("_operator.delitem", Effect::MutateFirst),
        ("builtins.iter", Effect::Iterate),
        ("builtins.next", Effect::Read),
        ("builtins.enumerate", Effect::Iterate),
        ("builtins.zip", Effect::Iterate),
        ("builtins.reversed", Effect::Iterate),
        ("builtins.map", Effect::Iterate),
        ("builtins.filter", Effect::Iterate),
        ("builtins.dict.keys", Effect::Iterate),
        ("builtins.dict.values", Effect::Iterate),
        ("builtins.dict.items", Effect::Iterate),
        ("itertools.chain", Effect::Iterate),
        ("itertools.islice", Effect::Iterate),
        ("builtins.memoryview", Effect::Alias),
        ("builtins.getattr", Effect::GetAttr),
        ("builtins.hasattr", Effect::GetAttr),
        ("builtins.setattr", Effect::SetAttr),
        ("builtins.delattr", Effect::DelAttr),
        ("builtins.object.__getattribute__", Effect::GetAttr),
        ("builtins.object.__setattr__", Effect::SetAttr),
        ("builtins.object.__delattr__", Effect::DelAttr),
        ("builtins.vars", Effect::Vars),
    ];

    #[test]
    fn every_entry_has_its_expected_effect() {
        assert_eq!(TABLE.len(), EXPECTED.len(), "an entry lacks its test");
        for (name, want) in EXPECTED {
            assert_eq!(effect_of(name), *want, "{name}");
        }
    }

    #[test]
    fn names_are_unique() {
        for (i, (a, _)) in TABLE.iter().enumerate() {
            assert!(TABLE[i + 1..].iter().all(|(b, _)| a != b), "{a} twice");
        }
    }

    #[test]
    fn unknown_callees_write() {
        assert_eq!(effect_of("numpy.ufunc.add"), Effect::Write);
        assert_eq!(effect_of("builtins.list.frobnicate"), Effect::Write);
        assert_eq!(effect_of("tests.Box.__setattr__"), Effect::SetAttr);
    }
}
