//! Safety numbers: what two people compare (by voice, or on screen) to know that the key behind
//! `bob#a1c2` on one screen is the key of the person they are talking to.
//!
//! The number is made from both identity keys (the raw 32-byte Ed25519 public keys behind the
//! two peer ids) and nothing else, so it is the same on both screens and changes when either
//! key does: an impostor using Bob's name has another key, hence another number. The two keys
//! are sorted first, so the order of "mine" and "theirs" does not matter.
//!
//! Form: 60 decimal digits in 12 groups of five (`12345 67890 …`), like Signal's: digits are
//! easy to read out over a radio in any language. Each group is five bytes of BLAKE3's
//! extendable output reduced modulo 100 000 (the bias of 2⁴⁰ mod 10⁵ is below 10⁻⁷), so the
//! number carries about 199 bits: far past what a forger could search for a colliding key.

use std::fmt;

/// Domain separation for BLAKE3 `derive_key`. Changing it changes every safety number.
const SAFETY_CONTEXT: &str = "hark 2026-12 safety number v1";
/// Groups of digits, and digits per group.
pub const SAFETY_GROUPS: usize = 12;
const GROUP_DIGITS: usize = 5;
const BYTES_PER_GROUP: usize = 5;

/// The safety number of a pair of identities.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SafetyNumber {
    groups: [u32; SAFETY_GROUPS],
}

impl SafetyNumber {
    /// The number for the identity keys `a` and `b` (Ed25519 public keys), in either order.
    pub fn new(a: &[u8; 32], b: &[u8; 32]) -> Self {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let mut hasher = blake3::Hasher::new_derive_key(SAFETY_CONTEXT);
        hasher.update(low);
        hasher.update(high);
        let mut bytes = [0u8; SAFETY_GROUPS * BYTES_PER_GROUP];
        hasher.finalize_xof().fill(&mut bytes);
        let mut groups = [0u32; SAFETY_GROUPS];
        for (group, chunk) in groups.iter_mut().zip(bytes.chunks_exact(BYTES_PER_GROUP)) {
            let value = chunk
                .iter()
                .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
            // < 100 000: fits a u32.
            *group = (value % 100_000) as u32;
        }
        Self { groups }
    }

    /// The groups of five digits.
    pub fn groups(&self) -> impl Iterator<Item = String> + '_ {
        self.groups
            .iter()
            .map(|g| format!("{g:0width$}", width = GROUP_DIGITS))
    }

    /// The 60 digits without spaces (what a QR code carries: numeric mode is the densest).
    pub fn digits(&self) -> String {
        self.groups().collect()
    }

    /// Two lines of six groups, as a screen shows them for reading out.
    pub fn lines(&self) -> [String; 2] {
        let groups: Vec<String> = self.groups().collect();
        let half = SAFETY_GROUPS / 2;
        [groups[..half].join(" "), groups[half..].join(" ")]
    }
}

impl fmt::Display for SafetyNumber {
    /// `12345 67890 …`: twelve groups separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self.groups().collect();
        f.write_str(&groups.join(" "))
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

/// Whether what someone typed or read out is this number: digits compared, spaces and any
/// other separators ignored.
pub fn matches(number: &SafetyNumber, typed: &str) -> bool {
    let typed: String = typed.chars().filter(char::is_ascii_digit).collect();
    typed == number.digits()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> [u8; 32] {
        [byte; 32]
    }

    #[test]
    fn the_same_on_both_sides() {
        assert_eq!(
            SafetyNumber::new(&key(1), &key(2)),
            SafetyNumber::new(&key(2), &key(1))
        );
    }

    #[test]
    fn another_key_gives_another_number() {
        let real = SafetyNumber::new(&key(1), &key(2));
        let impostor = SafetyNumber::new(&key(1), &key(3));
        assert_ne!(real, impostor);
        // Not only somewhere: nearly every group differs.
        let same = real
            .groups()
            .zip(impostor.groups())
            .filter(|(a, b)| a == b)
            .count();
        assert!(same <= 1, "{real} vs {impostor}");
        // A key paired with itself is a number too (verifying yourself), and its own.
        assert_ne!(SafetyNumber::new(&key(1), &key(1)), real);
    }

    #[test]
    fn sixty_digits_in_twelve_groups() {
        let number = SafetyNumber::new(&key(7), &key(9));
        let text = number.to_string();
        assert_eq!(text.len(), 60 + 11);
        assert!(text
            .split(' ')
            .all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_digit())));
        assert_eq!(number.digits().len(), 60);
        assert_eq!(number.lines().join(" "), text);
    }

    #[test]
    fn stable_across_builds() {
        // A change here changes every user's numbers: only with a new context string.
        let number = SafetyNumber::new(&key(0), &key(0xff));
        assert_eq!(number.to_string(), EXPECTED_00_FF);
    }

    #[test]
    fn typed_numbers_match_with_any_spacing() {
        let number = SafetyNumber::new(&key(1), &key(2));
        assert!(matches(&number, &number.to_string()));
        assert!(matches(&number, &number.digits()));
        let mut wrong = number.digits();
        wrong.replace_range(0..1, if wrong.starts_with('0') { "1" } else { "0" });
        assert!(!matches(&number, &wrong));
        assert!(!matches(&number, ""));
    }

    // Computed independently (Python's blake3 package, derive_key mode, 60-byte XOF output).
    const EXPECTED_00_FF: &str =
        "54779 67043 82693 57874 48313 31141 31138 76015 98232 23831 30201 38935";
}
