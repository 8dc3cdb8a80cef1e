//! Salesforce record Ids: 15 case-sensitive base-62 characters plus a 3-character suffix that
//! makes the 18-character form case-insensitive. Clients (and sfjira's link table) store the
//! 18-character form and may compare it case-insensitively, so the sandbox must compute the
//! suffix exactly as the real org does, or Ids that round-trip through such tools break.
//!
//! The suffix algorithm (the one behind the `CASESAFEID()` formula), as documented e.g. at
//! https://www.gammone.com/en/programming/how-to-convert-salesforce-id-from-15-to-18-chars and
//! https://codegolf.stackexchange.com/questions/69127/convert-salesforce-15-character-id-to-18-character :
//! split the 15 characters into three chunks of 5; in each chunk, bit i (LSB first) is set when
//! character i is an upper-case letter; each 5-bit value indexes `A..Z0..5`.
//!
//! Layout of a generated Id: 3-character key prefix (`001` Account), 2-character pod/instance
//! (`Dn`), 1 reserved character (`0`), 9 base-62 digits of a counter; then the suffix.

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 3-character case-safe suffix of a 15-character Id.
///
/// # Panics
/// If `id15` is not 15 ASCII characters (callers check with [`is_id_shaped`] first).
pub fn checksum(id15: &str) -> String {
    assert_eq!(id15.len(), 15, "a 15-character id is needed, got {id15:?}");
    id15.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            SUFFIX_ALPHABET[bits] as char
        })
        .collect()
}

/// `id15` plus its suffix.
pub fn to18(id15: &str) -> String {
    format!("{id15}{}", checksum(id15))
}

/// True for 15 or 18 ASCII alphanumerics, the only shapes the org accepts as an Id.
pub fn is_id_shaped(s: &str) -> bool {
    (s.len() == 15 || s.len() == 18) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The canonical 18-character form of a 15- or 18-character Id, or `None` if `s` is not an
/// Id. An 18-character Id whose suffix does not match its first 15 characters (compared
/// case-insensitively, as the suffix exists for case-insensitive tools) is not an Id.
pub fn normalize(s: &str) -> Option<String> {
    if !is_id_shaped(s) {
        return None;
    }
    let id15 = &s[..15];
    let suffix = checksum(id15);
    if s.len() == 18 && !s[15..].eq_ignore_ascii_case(&suffix) {
        return None;
    }
    Some(format!("{id15}{suffix}"))
}

/// The 18-character Id number `n` under `prefix` (3 characters).
pub fn make_id(prefix: &str, n: u64) -> String {
    let mut digits = [b'0'; 9];
    let mut rest = n;
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    let id15 = format!(
        "{prefix}Dn0{}",
        std::str::from_utf8(&digits).expect("ascii")
    );
    to18(&id15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_conversions_match() {
        // https://www.gammone.com/en/programming/how-to-convert-salesforce-id-from-15-to-18-chars
        assert_eq!(to18("a0D30000001n7Pi"), "a0D30000001n7PiEAI");
        // https://codegolf.stackexchange.com/questions/69127 (test cases from real org Ids)
        assert_eq!(to18("a01M00000062mPg"), "a01M00000062mPgIAI");
        assert_eq!(to18("001M000000qfPyS"), "001M000000qfPySIAU");
        assert_eq!(to18("a0FE000000D6r3F"), "a0FE000000D6r3FMAR");
        assert_eq!(to18("0F9E000000092w2"), "0F9E000000092w2KAA");
        assert_eq!(to18("a0RE000000IJmcN"), "a0RE000000IJmcNMAT");
    }

    #[test]
    fn normalize_accepts_both_lengths_and_rejects_bad_suffixes() {
        assert_eq!(
            normalize("001M000000qfPyS").as_deref(),
            Some("001M000000qfPySIAU")
        );
        assert_eq!(
            normalize("001M000000qfPySiau").as_deref(),
            Some("001M000000qfPySIAU")
        );
        assert_eq!(normalize("001M000000qfPySAAA"), None);
        assert_eq!(normalize("001M000000qfPy"), None);
        assert_eq!(normalize("001M000000qfPy-IAU"), None);
    }

    #[test]
    fn generated_ids_are_ordered_and_valid() {
        let a = make_id("006", 61);
        let b = make_id("006", 62);
        assert!(a < b, "{a} < {b}");
        assert_eq!(a.len(), 18);
        assert_eq!(normalize(&a).as_deref(), Some(a.as_str()));
        assert!(a.starts_with("006Dn0"));
    }
}
