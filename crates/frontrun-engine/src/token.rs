//! Replay tokens: a compact, versioned, ASCII-safe encoding of a schedule.
//!
//! Public API: [`encode`] (`&[ThreadId]` → `String`), [`decode`] (`&str` →
//! `Result<Vec<ThreadId>, EngineError>`).
//!
//! Format `v1`: `"v1:"` followed by base64url (no padding) of a byte string:
//! the schedule run-length encoded as pairs of LEB128 varints
//! `(thread, run length ≥ 1)`, then one checksum byte. Schedules repeat the
//! same thread for long stretches, so runs keep tokens short.

use crate::error::{EngineError, TokenProblem};
use crate::event::ThreadId;

const PREFIX: &str = "v1:";
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encode a schedule as a `v1` token.
pub fn encode(schedule: &[ThreadId]) -> String {
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < schedule.len() {
        let t = schedule[i];
        let run = schedule[i..].iter().take_while(|&&x| x == t).count();
        put_varint(&mut bytes, t as u64);
        put_varint(&mut bytes, run as u64);
        i += run;
    }
    bytes.push(checksum(&bytes));
    let mut out = String::with_capacity(PREFIX.len() + bytes.len() * 4 / 3 + 2);
    out.push_str(PREFIX);
    base64url(&bytes, &mut out);
    out
}

/// Decode a token made by [`encode`].
pub fn decode(token: &str) -> Result<Vec<ThreadId>, EngineError> {
    let bad = |problem| EngineError::BadToken {
        token: token.to_string(),
        problem,
    };
    let trimmed = token.trim();
    let Some((version, payload)) = trimmed.split_once(':') else {
        return Err(bad(TokenProblem::MissingVersion));
    };
    if !version.starts_with('v') || version.len() < 2 {
        return Err(bad(TokenProblem::MissingVersion));
    }
    if version != "v1" {
        return Err(bad(TokenProblem::UnknownVersion(version.to_string())));
    }
    let offset = trimmed.len() - payload.len();
    let bytes = unbase64url(payload).map_err(|(position, found)| {
        bad(TokenProblem::BadCharacter {
            position: position + offset,
            found,
        })
    })?;
    let Some((&sum, body)) = bytes.split_last() else {
        return Err(bad(TokenProblem::Truncated));
    };
    if checksum(body) != sum {
        return Err(bad(TokenProblem::Checksum));
    }
    let mut schedule = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let t = get_varint(body, &mut pos).map_err(bad)?;
        let run = get_varint(body, &mut pos).map_err(bad)?;
        let t = ThreadId::try_from(t).map_err(|_| bad(TokenProblem::Overflow))?;
        if run == 0 {
            return Err(bad(TokenProblem::EmptyRun));
        }
        // A corrupt run length must not make us allocate without bound; the
        // checksum makes this unlikely, the cap makes it impossible.
        if run > (1 << 32) {
            return Err(bad(TokenProblem::Overflow));
        }
        schedule.extend(std::iter::repeat_n(t, run as usize));
    }
    Ok(schedule)
}

/// One byte mixing every byte with its position (an unchanged sum under
/// swapped bytes would miss the most common corruption).
fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().enumerate().fold(0x5Au8, |acc, (i, &b)| {
        acc.rotate_left(3) ^ b ^ (i as u8).wrapping_mul(31)
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
            let threads = 1 + r.below(if case % 10 == 0 { 100_000 } else { 5 });
            let mut s = Vec::with_capacity(len);
            while s.len() < len {
                let t = r.below(threads) as usize;
                let run = 1 + r.below(8) as usize;
                s.extend(std::iter::repeat_n(t, run.min(len - s.len())));
            }
            let tok = encode(&s);
            assert!(tok.starts_with("v1:") && tok.is_ascii(), "{tok}");
            assert!(!tok.contains(['+', '/', '=', ' ']));
            assert_eq!(decode(&tok).unwrap(), s, "case {case}: {tok}");
        }
    }

    #[test]
    fn runs_keep_tokens_short() {
        let s: Vec<usize> = [0; 500].into_iter().chain([1; 500]).collect();
        assert!(encode(&s).len() < 16, "{}", encode(&s));
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
            problem("v1:AA*A"),
            TokenProblem::BadCharacter {
                position: 5,
                found: '*'
            }
        ));
        assert_eq!(problem("v1:"), TokenProblem::Truncated);
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(decode(&flipped).is_err(), "{good} vs {flipped}");
        let msg = decode("v1:AA*A").unwrap_err().to_string();
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
}
