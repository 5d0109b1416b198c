//! Room ids: what a user may choose, what the server generates, and how a
//! typed-in code is read.

/// Characters of generated codes: no 0/O, 1/I/L.
pub const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
pub const CODE_PREFIX: &str = "ROOM-";
pub const CODE_LEN: usize = 6;
pub const MAX_ID_LEN: usize = 64;
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// Whether `id` matches `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`.
pub fn is_valid_room_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_ID_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// The key ids are compared by: ids are matched case-insensitively.
pub fn room_key(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// Builds a code from six indices into [`CODE_ALPHABET`] (taken mod its length).
pub fn code_from_indices(indices: [u8; CODE_LEN]) -> String {
    let mut code = String::with_capacity(CODE_PREFIX.len() + CODE_LEN);
    code.push_str(CODE_PREFIX);
    for i in indices {
        code.push(CODE_ALPHABET[i as usize % CODE_ALPHABET.len()] as char);
    }
    code
}

/// Whether `s` is six characters of the code alphabet, in any case.
pub fn is_bare_code(s: &str) -> bool {
    s.len() == CODE_LEN && s.bytes().all(|b| CODE_ALPHABET.contains(&b.to_ascii_uppercase()))
}

/// The ids a typed-in "join by code" text may mean, most likely first:
/// for a bare six-character code its `ROOM-` form, then the text itself
/// (trimmed). Case does not matter, as the server matches ids
/// case-insensitively.
pub fn code_candidates(input: &str) -> Vec<String> {
    let text = input.trim();
    if !is_valid_room_id(text) {
        return Vec::new();
    }
    if is_bare_code(text) {
        // Generated codes are far more common than six-letter names: asking
        // for them first spares a typical join a 404.
        return vec![format!("{CODE_PREFIX}{}", text.to_ascii_uppercase()), text.to_string()];
    }
    vec![text.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_ids() {
        assert!(is_valid_room_id("a"));
        assert!(is_valid_room_id("ROOM-7KQ2MX"));
        assert!(is_valid_room_id("my_room-2"));
        assert!(is_valid_room_id(&"a".repeat(64)));
        assert!(!is_valid_room_id(&"a".repeat(65)));
        assert!(!is_valid_room_id(""));
        assert!(!is_valid_room_id("-room"));
        assert!(!is_valid_room_id("room 1"));
        assert!(!is_valid_room_id("röom"));
        assert!(!is_valid_room_id("a/b"));
    }

    #[test]
    fn codes_use_the_alphabet() {
        let code = code_from_indices([0, 1, 2, 30, 31, 255]);
        assert_eq!(code.len(), 11);
        assert!(code.starts_with("ROOM-"));
        assert!(is_bare_code(&code[5..]));
        assert!(is_valid_room_id(&code));
    }

    #[test]
    fn candidates_accept_bare_and_prefixed_codes() {
        assert_eq!(code_candidates(" 7kq2mx "), vec!["ROOM-7KQ2MX".to_string(), "7kq2mx".to_string()]);
        assert_eq!(code_candidates("room-7kq2mx"), vec!["room-7kq2mx".to_string()]);
        assert_eq!(code_candidates("demo"), vec!["demo".to_string()]);
        // 0 and O are not in the alphabet: not a bare code.
        assert_eq!(code_candidates("7KQ2M0"), vec!["7KQ2M0".to_string()]);
        assert!(code_candidates("no spaces").is_empty());
    }
}
