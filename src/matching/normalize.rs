//! Normalisation per field role, for comparing values (never for storing them: what goes into a
//! column is the mapping's transform of the best evidence, see `resolve`).

use deunicode::deunicode;

/// Identifiers (booking codes, plates, Stripe ids): upper case, no spaces or dashes inside, so
/// "rc-7k2qx9 " and "RC 7K2QX9" meet.
pub fn code(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

/// Emails: trimmed, lower case. Nothing else is folded: dots and plus tags are real addresses
/// at most providers, and merging two people on a guess is worse than a review.
pub fn email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// Phones: the digits that identify the line whatever way it was written: the last nine, which
/// drops country codes, trunk zeros and formatting ("+44 20 7946 0958" and "020 7946 0958").
pub fn phone(s: &str) -> String {
    let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
    let start = digits.len().saturating_sub(9);
    digits[start..].iter().collect()
}

/// A name as tokens: transliterated to ASCII (Müller and Muller, José and Jose; Mueller stays
/// close enough for the string comparison), lower case, punctuation dropped, "Lee, Ann" turned
/// around. The given name is first, the family name last.
pub fn name_tokens(s: &str) -> Vec<String> {
    let ordered = match s.split_once(',') {
        Some((family, given)) => format!("{given} {family}"),
        None => s.to_string(),
    };
    deunicode(&ordered)
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// The family name (last token) of a name, folded: the blocking key for names.
pub fn family_name(s: &str) -> Option<String> {
    name_tokens(s).pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_emails_phones() {
        assert_eq!(code(" rc-7k2qx9"), "RC7K2QX9");
        assert_eq!(email(" Ann.Lee@Example.COM "), "ann.lee@example.com");
        assert_eq!(phone("+44 20 7946 0958"), phone("020 7946 0958"));
        assert_eq!(phone("(030) 123-4567"), "301234567");
        assert_eq!(phone("12"), "12");
    }

    #[test]
    fn names_fold_accents_and_order() {
        assert_eq!(name_tokens("José  Müller"), ["jose", "muller"]);
        assert_eq!(name_tokens("Müller, José"), ["jose", "muller"]);
        assert_eq!(name_tokens("O'Neil-Smith"), ["o", "neil", "smith"]);
        assert_eq!(name_tokens("Zoë ŁUKASZ"), ["zoe", "lukasz"]);
        assert_eq!(family_name("Anna Łukasz").as_deref(), Some("lukasz"));
    }
}
