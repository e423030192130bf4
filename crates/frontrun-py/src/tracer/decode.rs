//! Decoding `co_code` (the de-optimised bytecode: no specialised opcodes)
//! into a table indexed by code unit, filled once per code object.

use super::ops::{OpTable, Opcode};

/// One decoded instruction, stored at the code unit where its opcode event
/// fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instr {
    pub op: Opcode,
    /// The full argument, `EXTENDED_ARG` prefixes included.
    pub arg: u32,
    /// Code unit of the next instruction (inline caches skipped).
    pub next: u32,
}

const SKIP: Instr = Instr {
    op: Opcode::Skip,
    arg: 0,
    next: 0,
};

/// Where the event of an `EXTENDED_ARG`-prefixed instruction fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixEvents {
    /// 3.10/3.11: only on the first prefix, so the prefix carries the
    /// instruction it prefixes.
    OnPrefixOnly,
    /// 3.12/3.13: on the prefix and on the instruction; the prefix is skipped.
    OnBoth,
}

/// Decode `code` (two bytes per code unit) into one entry per code unit.
pub fn decode(code: &[u8], table: &OpTable, prefixes: PrefixEvents) -> Vec<Instr> {
    let n = code.len() / 2;
    let mut out = vec![SKIP; n];
    let mut ext: u32 = 0;
    let mut ext_start: Option<usize> = None;
    for i in 0..n {
        let (opcode, arg) = (code[2 * i], u32::from(code[2 * i + 1]));
        let full = (ext << 8) | arg;
        if opcode == table.extended_arg {
            ext = full;
            ext_start.get_or_insert(i);
            continue;
        }
        let mut next = i + 1;
        while next < n && Some(code[2 * next]) == table.cache {
            next += 1;
        }
        let instr = Instr {
            op: table.ops[usize::from(opcode)],
            arg: full,
            next: u32::try_from(next).unwrap_or(u32::MAX),
        };
        out[i] = instr;
        if let (Some(start), PrefixEvents::OnPrefixOnly) = (ext_start, prefixes) {
            out[start..i].fill(instr);
        }
        ext = 0;
        ext_start = None;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn table() -> OpTable {
        let mut m = HashMap::new();
        m.insert("LOAD_ATTR".to_string(), 10u8);
        m.insert("EXTENDED_ARG".to_string(), 144u8);
        m.insert("CACHE".to_string(), 0u8);
        OpTable::from_opmap(&m).unwrap()
    }

    #[test]
    fn extended_arg_per_version() {
        // EXTENDED_ARG 1; LOAD_ATTR 2; CACHE; CACHE; NOP-ish(50)
        let code = [144, 1, 10, 2, 0, 0, 0, 0, 50, 0];
        let old = decode(&code, &table(), PrefixEvents::OnPrefixOnly);
        assert_eq!(old[0].op, Opcode::LoadAttr);
        assert_eq!(old[0].arg, 0x102);
        assert_eq!(old[1].arg, 0x102);
        assert_eq!(old[1].next, 4);
        let new = decode(&code, &table(), PrefixEvents::OnBoth);
        assert_eq!(new[0].op, Opcode::Skip);
        assert_eq!(new[1].op, Opcode::LoadAttr);
        assert_eq!(new[1].arg, 0x102);
        assert_eq!(new[2].op, Opcode::Skip);
        assert_eq!(new[4].op, Opcode::Skip);
    }
}
