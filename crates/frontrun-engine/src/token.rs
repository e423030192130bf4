//! Replay tokens: a compact, versioned, ASCII-safe encoding of a schedule.
//!
//! Public API: [`encode`] (`&[ThreadId]` → `String`), [`decode`] (`&str` →
//! `Result<Vec<ThreadId>, EngineError>`, default [`Limits`]) and
//! [`decode_within`] (explicit limits).
//!
//! Format `v2`: `"v2:"` followed by base64url (no padding) of a byte string:
//! a header of two LEB128 varints (schedule length, number of threads), the
//! schedule run-length encoded as pairs of varints `(thread, run length ≥ 1)`,
//! then a 32-bit checksum (FNV-1a, little-endian) of everything before it.
//! Schedules repeat the same thread for long stretches, so runs keep tokens
//! short. The header lets [`decode`] check every length against its limits
//! before allocating anything: a forged token with a valid checksum still
//! cannot make it allocate more than `Limits::max_steps` entries.
//!
//! `v1` (one checksum byte, no header) is refused with a message saying to
//! rerun the exploration.

use crate::error::{EngineError, TokenProblem};
use crate::event::ThreadId;

const PREFIX: &str = "v2:";
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const CHECKSUM_BYTES: usize = 4;

/// Bounds a decoded token must respect, checked before any allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest schedule (scheduling steps) accepted.
    pub max_steps: usize,
    /// Most threads a schedule may name.
    pub max_threads: usize,
}

impl Default for Limits {
    /// Far beyond any exploration that finishes in reasonable time, small
    /// enough that the largest accepted schedule costs at most 32 MiB.
    fn default() -> Self {
        Limits {
            max_steps: 1 << 22,
            max_threads: 1 << 16,
        }
    }
}

/// Encode a schedule as a `v2` token.
pub fn encode(schedule: &[ThreadId]) -> String {
    let threads = schedule.iter().max().map_or(0, |&t| t + 1);
    let mut bytes = Vec::new();
    put_varint(&mut bytes, schedule.len() as u64);
    put_varint(&mut bytes, threads as u64);
    let mut i = 0;
    while i < schedule.len() {
        let t = schedule[i];
        let run = schedule[i..].iter().take_while(|&&x| x == t).count();
        put_varint(&mut bytes, t as u64);
        put_varint(&mut bytes, run as u64);
        i += run;
    }
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    let mut out = String::with_capacity(PREFIX.len() + bytes.len() * 4 / 3 + 2);
    out.push_str(PREFIX);
    base64url(&bytes, &mut out);
    out
}

/// Decode a token made by [`encode`], within the default [`Limits`].
pub fn decode(token: &str) -> Result<Vec<ThreadId>, EngineError> {
    decode_within(token, Limits::default())
}

/// Decode a token made by [`encode`]; a token whose schedule is longer, or
/// names more threads, than `limits` allow is refused before allocating it.
pub fn decode_within(token: &str, limits: Limits) -> Result<Vec<ThreadId>, EngineError> {
    let bad = |problem| EngineError::BadToken {
        token: shorten(token),
        problem,
    };
    let trimmed = token.trim();
    let Some((version, payload)) = trimmed.split_once(':') else {
        return Err(bad(TokenProblem::MissingVersion));
    };
    if !version.starts_with('v') || version.len() < 2 {
        return Err(bad(TokenProblem::MissingVersion));
    }
    if version == "v1" {
        return Err(bad(TokenProblem::Obsolete));
    }
    if version != "v2" {
        return Err(bad(TokenProblem::UnknownVersion(shorten(version))));
    }
    let offset = trimmed.len() - payload.len();
    let bytes = unbase64url(payload).map_err(|(position, found)| {
        bad(TokenProblem::BadCharacter {
            position: position + offset,
            found,
        })
    })?;
    if bytes.len() < CHECKSUM_BYTES {
        return Err(bad(TokenProblem::Truncated));
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    let sum = u32::from_le_bytes(sum.try_into().expect("four bytes"));
    if checksum(body) != sum {
        return Err(bad(TokenProblem::Checksum));
    }
    let mut pos = 0;
    let steps = get_varint(body, &mut pos).map_err(bad)?;
    let threads = get_varint(body, &mut pos).map_err(bad)?;
    if steps > limits.max_steps as u64 {
        return Err(bad(TokenProblem::TooLong {
            steps,
            max: limits.max_steps,
        }));
    }
    if threads > limits.max_threads as u64 {
        return Err(bad(TokenProblem::TooManyThreads {
            threads,
            max: limits.max_threads,
        }));
    }
    // Both bounded above: the allocation is at most `max_steps` entries.
    let steps = steps as usize;
    let mut schedule = Vec::with_capacity(steps);
    while pos < body.len() {
        let t = get_varint(body, &mut pos).map_err(bad)?;
        let run = get_varint(body, &mut pos).map_err(bad)?;
        if t >= threads {
            return Err(bad(TokenProblem::Inconsistent));
        }
        if run == 0 {
            return Err(bad(TokenProblem::EmptyRun));
        }
        if run > (steps - schedule.len()) as u64 {
            return Err(bad(TokenProblem::Inconsistent));
        }
        schedule.extend(std::iter::repeat_n(t as ThreadId, run as usize));
    }
    if schedule.len() != steps {
        return Err(bad(TokenProblem::Inconsistent));
    }
    Ok(schedule)
}

/// Error messages quote the token; a megabyte of garbage is cut.
fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// 32-bit FNV-1a: every byte and its position change the result, and a
/// random or altered token passes with probability 2^-32.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, TokenProblem> {
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let &b = bytes.get(*pos).ok_or(TokenProblem::Truncated)?;
        *pos += 1;
        if shift >= 64 || (shift == 63 && b & 0x7E != 0) {
            return Err(TokenProblem::Overflow);
        }
        v |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
    }
}

fn base64url(bytes: &[u8], out: &mut String) {
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3F) as usize] as char);
        }
    }
}

/// Decode base64url without padding; an error gives the offending
/// character and its position.
fn unbase64url(s: &str) -> Result<Vec<u8>, (usize, char)> {
    let mut vals = Vec::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        let v = match c {
            'A'..='Z' => c as u8 - b'A',
            'a'..='z' => c as u8 - b'a' + 26,
            '0'..='9' => c as u8 - b'0' + 52,
            '-' => 62,
            '_' => 63,
            _ => return Err((i, c)),
        };
        vals.push(v);
    }
    if vals.len() % 4 == 1 {
        // Four characters hold three bytes; a lone trailing character holds
        // none, so the token was cut.
        return Err((s.len(), '\0'));
    }
    let mut out = Vec::with_capacity(vals.len() * 3 / 4);
    for (ci, chunk) in vals.chunks(4).enumerate() {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &v)| acc | u32::from(v) << (18 - 6 * i));
        let used_bits = 8 * (chunk.len() - 1);
        if n & ((1 << (24 - used_bits)) - 1) != 0 {
            // Bits past the last byte must be zero, so each schedule has
            // exactly one token.
            let i = ci * 4 + chunk.len() - 1;
            return Err((i, s.as_bytes()[i] as char));
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn round_trips_random_schedules() {
        let mut r = SplitMix64::new(1);
        for case in 0..2000 {
            let len = r.below(200) as usize;
            let threads = 1 + r.below(if case % 10 == 0 { 50_000 } else { 5 });
            let mut s = Vec::with_capacity(len);
            while s.len() < len {
                let t = r.below(threads) as usize;
                let run = 1 + r.below(8) as usize;
                s.extend(std::iter::repeat_n(t, run.min(len - s.len())));
            }
            let tok = encode(&s);
            assert!(tok.starts_with("v2:") && tok.is_ascii(), "{tok}");
            assert!(!tok.contains(['+', '/', '=', ' ']));
            assert_eq!(decode(&tok).unwrap(), s, "case {case}: {tok}");
        }
    }

    #[test]
    fn runs_keep_tokens_short() {
        let s: Vec<usize> = [0; 500].into_iter().chain([1; 500]).collect();
        assert!(encode(&s).len() < 24, "{}", encode(&s));
        assert_eq!(decode(&encode(&[])).unwrap(), Vec::<usize>::new());
    }

    fn problem(tok: &str) -> TokenProblem {
        match decode(tok) {
            Err(EngineError::BadToken { problem, .. }) => problem,
            other => panic!("{tok}: expected a bad token, got {other:?}"),
        }
    }

    #[test]
    fn bad_tokens_say_what_is_wrong() {
        let good = encode(&[0, 0, 1, 2, 1]);
        assert_eq!(problem("hello"), TokenProblem::MissingVersion);
        assert_eq!(
            problem("v9:AAAA"),
            TokenProblem::UnknownVersion("v9".into())
        );
        assert!(matches!(
            problem("v2:AA*A"),
            TokenProblem::BadCharacter {
                position: 5,
                found: '*'
            }
        ));
        assert_eq!(problem("v2:"), TokenProblem::Truncated);
        assert_eq!(problem("v1:AAMBAwABAQEL"), TokenProblem::Obsolete);
        assert!(decode("v1:AAMBAwABAQEL")
            .unwrap_err()
            .to_string()
            .contains("older frontrun"));
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(decode(&flipped).is_err(), "{good} vs {flipped}");
        let msg = decode("v2:AA*A").unwrap_err().to_string();
        assert!(
            msg.contains("position 5") && msg.contains("counterexample"),
            "{msg}"
        );
    }

    #[test]
    fn every_single_character_change_is_caught_or_harmless() {
        let s = vec![0, 1, 1, 2, 0, 3, 3, 3, 1];
        let good = encode(&s);
        let mut caught = 0;
        for i in 3..good.len() {
            for c in ALPHABET.iter().map(|&b| b as char) {
                let mut t: Vec<char> = good.chars().collect();
                if t[i] == c {
                    continue;
                }
                t[i] = c;
                let t: String = t.into_iter().collect();
                match decode(&t) {
                    Err(_) => caught += 1,
                    Ok(d) => assert_ne!(d, s, "a changed token decoded to the same schedule"),
                }
            }
        }
        assert!(caught > 0);
    }

    /// A token whose checksum is right but whose header claims 2^40 steps:
    /// refused before any allocation.
    #[test]
    fn forged_lengths_are_refused_before_allocating() {
        let mut body = Vec::new();
        put_varint(&mut body, 1 << 40);
        put_varint(&mut body, 1);
        put_varint(&mut body, 0);
        put_varint(&mut body, 1 << 40);
        body.extend_from_slice(&checksum(&body).to_le_bytes());
        let mut tok = String::from(PREFIX);
        base64url(&body, &mut tok);
        assert!(matches!(problem(&tok), TokenProblem::TooLong { .. }));
        // Runs that overshoot a small header are refused as they are read.
        let mut body = Vec::new();
        put_varint(&mut body, 3);
        put_varint(&mut body, 1);
        put_varint(&mut body, 0);
        put_varint(&mut body, 1 << 40);
        body.extend_from_slice(&checksum(&body).to_le_bytes());
        let mut tok = String::from(PREFIX);
        base64url(&body, &mut tok);
        assert_eq!(problem(&tok), TokenProblem::Inconsistent);
    }

    /// Random byte strings and mutations of valid tokens: `decode` returns,
    /// never panics, and never yields a schedule beyond its limits.
    pub(crate) fn fuzz(cases: u64, seed: u64) {
        let limits = Limits {
            max_steps: 4096,
            max_threads: 64,
        };
        let mut r = SplitMix64::new(seed);
        let mut accepted = 0u64;
        for case in 0..cases {
            let tok = match case % 3 {
                0 => {
                    let n = r.below(40) as usize;
                    let mut bytes: Vec<u8> = (0..n).map(|_| r.below(256) as u8).collect();
                    bytes.extend_from_slice(&checksum(&bytes).to_le_bytes());
                    let mut t = String::from(PREFIX);
                    base64url(&bytes, &mut t);
                    t
                }
                1 => {
                    let n = r.below(30) as usize;
                    let chars: Vec<u8> = (0..n).map(|_| ALPHABET[r.below(64) as usize]).collect();
                    format!("v2:{}", String::from_utf8(chars).unwrap())
                }
                _ => {
                    let len = r.below(300) as usize;
                    let s: Vec<usize> = (0..len).map(|_| r.below(4) as usize).collect();
                    let mut t = encode(&s).into_bytes();
                    for _ in 0..=r.below(3) {
                        let i = 3 + r.below((t.len() - 3) as u64) as usize;
                        t[i] = ALPHABET[r.below(64) as usize];
                    }
                    String::from_utf8(t).unwrap()
                }
            };
            if let Ok(s) = decode_within(&tok, limits) {
                accepted += 1;
                assert!(s.len() <= limits.max_steps, "{tok}");
                assert!(s.iter().all(|&t| t < limits.max_threads), "{tok}");
            }
        }
        assert!(accepted < cases, "the fuzzer produced only valid tokens");
    }

    #[test]
    fn fuzz_10k_cases() {
        fuzz(10_000, 7);
    }

    /// `make fuzz-tokens`: a million cases.
    #[test]
    #[ignore = "slow: run by `make fuzz-tokens`"]
    fn fuzz_1m_cases() {
        let cases = std::env::var("FRONTRUN_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        fuzz(cases, 11);
    }
}
