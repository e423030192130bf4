//! The opcodes the tracer acts on, by name, and how container methods are
//! classified. Opcode *numbers* differ per version: they are looked up in
//! `dis.opmap` once, so only names appear in the logic.

use std::collections::HashMap;

/// What an instruction means to the tracer. `Skip` is everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    Skip,
    LoadAttr,
    LoadMethod,
    StoreAttr,
    DeleteAttr,
    BinarySubscr,
    StoreSubscr,
    DeleteSubscr,
    BinarySlice,
    StoreSlice,
    LoadGlobal,
    StoreGlobal,
    DeleteGlobal,
    LoadDeref,
    StoreDeref,
    DeleteDeref,
    /// `LOAD_CLASSDEREF` (≤3.11) and `LOAD_FROM_DICT_OR_DEREF` (3.12+).
    LoadClassDeref,
    GetIter,
    ContainsOp,
    /// Advancing an iterator: the item of a shared container is shared.
    ForIter,
    /// A positional call (`CALL_METHOD` on 3.10, `CALL` on 3.11+): follows
    /// up method calls on shared containers, and hands shared arguments to
    /// opaque (C or untraced) callees.
    Call,
    /// `CALL_FUNCTION` (3.10): the callable sits right below the arguments.
    CallFunction,
    /// `CALL_FUNCTION_KW` (3.10) and `CALL_KW` (3.13): a kwnames tuple on top.
    CallKw,
    /// `CALL_FUNCTION_EX`: `f(*args, **kwargs)`.
    CallEx,
    /// C code reading the top operand: unpacking, `*x`/`**x` spreads,
    /// f-string formatting.
    ReadTop,
    /// C code reading the two top operands: comparisons, binary operators.
    ReadTwo,
    /// `BINARY_OP` (3.11+): an in-place operator (argument ≥ 13) changes the
    /// left operand, the others read both.
    BinaryOp,
    /// `INPLACE_*` (3.10): changes the left operand, reads the right one.
    Inplace,
    /// `FORMAT_VALUE` (≤3.12): the value is below the format spec if the
    /// argument's bit 4 is set.
    FormatValue,
    /// `MATCH_KEYS`: the subject is below the keys tuple.
    ReadSecond,
    /// Formatting the top operand (`FORMAT_SIMPLE`, `CONVERT_VALUE`): reads
    /// it and the objects it holds (`f"{(a.l,)}"`).
    FormatTop,
    /// `FORMAT_WITH_SPEC` (3.13): formats the value below the spec.
    FormatSecond,
    /// `COMPARE_OP`: compares the two top operands and the objects they
    /// hold (`(a.l,) == (b.l,)` compares the lists).
    Compare,
    /// `MATCH_CLASS`: a class pattern reads attributes of the subject, the
    /// third operand (below the class and the keyword names).
    MatchClass,
}

const NAMED: &[(&str, Opcode)] = &[
    ("LOAD_ATTR", Opcode::LoadAttr),
    ("LOAD_METHOD", Opcode::LoadMethod),
    ("STORE_ATTR", Opcode::StoreAttr),
    ("DELETE_ATTR", Opcode::DeleteAttr),
    ("BINARY_SUBSCR", Opcode::BinarySubscr),
    ("STORE_SUBSCR", Opcode::StoreSubscr),
    ("DELETE_SUBSCR", Opcode::DeleteSubscr),
    ("BINARY_SLICE", Opcode::BinarySlice),
    ("STORE_SLICE", Opcode::StoreSlice),
    ("LOAD_GLOBAL", Opcode::LoadGlobal),
    ("STORE_GLOBAL", Opcode::StoreGlobal),
    ("DELETE_GLOBAL", Opcode::DeleteGlobal),
    ("LOAD_DEREF", Opcode::LoadDeref),
    ("STORE_DEREF", Opcode::StoreDeref),
    ("DELETE_DEREF", Opcode::DeleteDeref),
    ("LOAD_CLASSDEREF", Opcode::LoadClassDeref),
    ("LOAD_FROM_DICT_OR_DEREF", Opcode::LoadClassDeref),
    ("GET_ITER", Opcode::GetIter),
    ("CONTAINS_OP", Opcode::ContainsOp),
    ("FOR_ITER", Opcode::ForIter),
    ("CALL_METHOD", Opcode::Call),
    ("CALL", Opcode::Call),
    ("CALL_FUNCTION", Opcode::CallFunction),
    ("CALL_FUNCTION_KW", Opcode::CallKw),
    ("CALL_KW", Opcode::CallKw),
    ("CALL_FUNCTION_EX", Opcode::CallEx),
    ("UNPACK_SEQUENCE", Opcode::ReadTop),
    ("UNPACK_EX", Opcode::ReadTop),
    ("LIST_EXTEND", Opcode::ReadTop),
    ("SET_UPDATE", Opcode::ReadTop),
    ("DICT_UPDATE", Opcode::ReadTop),
    ("DICT_MERGE", Opcode::ReadTop),
    ("LIST_TO_TUPLE", Opcode::ReadTop),
    ("FORMAT_SIMPLE", Opcode::FormatTop),
    ("CONVERT_VALUE", Opcode::FormatTop),
    ("FORMAT_WITH_SPEC", Opcode::FormatSecond),
    ("FORMAT_VALUE", Opcode::FormatValue),
    // Truth tests observe a container's size.
    ("TO_BOOL", Opcode::ReadTop),
    ("UNARY_NOT", Opcode::ReadTop),
    ("POP_JUMP_IF_FALSE", Opcode::ReadTop),
    ("POP_JUMP_IF_TRUE", Opcode::ReadTop),
    ("POP_JUMP_FORWARD_IF_FALSE", Opcode::ReadTop),
    ("POP_JUMP_FORWARD_IF_TRUE", Opcode::ReadTop),
    ("POP_JUMP_BACKWARD_IF_FALSE", Opcode::ReadTop),
    ("POP_JUMP_BACKWARD_IF_TRUE", Opcode::ReadTop),
    ("JUMP_IF_FALSE_OR_POP", Opcode::ReadTop),
    ("JUMP_IF_TRUE_OR_POP", Opcode::ReadTop),
    ("COMPARE_OP", Opcode::Compare),
    // `match`: sequence patterns read the length, mapping patterns the keys,
    // class patterns attributes (items are read by ordinary subscripts).
    ("GET_LEN", Opcode::ReadTop),
    ("MATCH_KEYS", Opcode::ReadSecond),
    ("MATCH_CLASS", Opcode::MatchClass),
    ("BINARY_OP", Opcode::BinaryOp),
];

/// 3.10's per-operator opcodes that are not item accesses.
fn operator(name: &str) -> Option<Opcode> {
    if name.starts_with("INPLACE_") {
        return Some(Opcode::Inplace);
    }
    let item = matches!(name, "BINARY_SUBSCR" | "BINARY_SLICE" | "BINARY_OP");
    (name.starts_with("BINARY_") && !item).then_some(Opcode::ReadTwo)
}

/// Opcode number → meaning, plus the two opcodes the decoder itself needs.
#[derive(Clone, Debug)]
pub struct OpTable {
    pub ops: [Opcode; 256],
    pub extended_arg: u8,
    /// Inline cache filler (3.11+); `None` before.
    pub cache: Option<u8>,
}

impl OpTable {
    /// Build from `dis.opmap` (name → number).
    pub fn from_opmap(opmap: &HashMap<String, u8>) -> Option<Self> {
        let mut ops = [Opcode::Skip; 256];
        for (name, &n) in opmap {
            if let Some(op) = operator(name) {
                ops[usize::from(n)] = op;
            }
        }
        for (name, op) in NAMED {
            if let Some(&n) = opmap.get(*name) {
                ops[usize::from(n)] = *op;
            }
        }
        Some(OpTable {
            ops,
            extended_arg: *opmap.get("EXTENDED_ARG")?,
            cache: opmap.get("CACHE").copied(),
        })
    }
}

/// How a method looked up on a built-in container touches the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodUse {
    /// Mutates the container (`append`, `update`, `popleft`…).
    Write,
    /// Reads it (`get`, `items`, `count`… and anything unknown).
    Read,
}

const MUTATORS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "sort",
    "reverse",
    "update",
    "setdefault",
    "popitem",
    "add",
    "discard",
    "appendleft",
    "popleft",
    "extendleft",
    "rotate",
    "difference_update",
    "intersection_update",
    "symmetric_difference_update",
    "__setitem__",
    "__delitem__",
    "__iadd__",
    "__ior__",
];

/// Classify a method name of list/dict/set/deque/bytearray. Unknown names are
/// conservatively reads of the whole container.
pub fn method_use(name: &str) -> MethodUse {
    if MUTATORS.contains(&name) {
        MethodUse::Write
    } else {
        MethodUse::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_maps_names_not_numbers() {
        let mut m = HashMap::new();
        m.insert("LOAD_ATTR".to_string(), 106u8);
        m.insert("EXTENDED_ARG".to_string(), 144u8);
        let t = OpTable::from_opmap(&m).expect("EXTENDED_ARG present");
        assert_eq!(t.ops[106], Opcode::LoadAttr);
        assert_eq!(t.ops[107], Opcode::Skip);
        assert_eq!(t.cache, None);
        let mut m = HashMap::new();
        m.insert("EXTENDED_ARG".to_string(), 144u8);
        m.insert("INPLACE_ADD".to_string(), 55u8);
        m.insert("BINARY_ADD".to_string(), 23u8);
        m.insert("BINARY_SUBSCR".to_string(), 25u8);
        let t = OpTable::from_opmap(&m).expect("EXTENDED_ARG present");
        assert_eq!(t.ops[55], Opcode::Inplace);
        assert_eq!(t.ops[23], Opcode::ReadTwo);
        assert_eq!(t.ops[25], Opcode::BinarySubscr);
        assert!(OpTable::from_opmap(&HashMap::new()).is_none());
    }

    #[test]
    fn methods_classified() {
        assert_eq!(method_use("append"), MethodUse::Write);
        assert_eq!(method_use("popleft"), MethodUse::Write);
        assert_eq!(method_use("get"), MethodUse::Read);
        assert_eq!(method_use("frobnicate"), MethodUse::Read);
    }
}
