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

/// `name_tokens` with German umlauts written out first (Müller as mueller), the way people
/// without the letter on their keyboard write them.
fn name_tokens_spelled_out(s: &str) -> Vec<String> {
    let spelled: String = s
        .chars()
        .flat_map(|c| match c {
            'ä' => "ae".chars().collect::<Vec<_>>(),
            'ö' => "oe".chars().collect(),
            'ü' => "ue".chars().collect(),
            'Ä' => "Ae".chars().collect(),
            'Ö' => "Oe".chars().collect(),
            'Ü' => "Ue".chars().collect(),
            other => vec![other],
        })
        .collect();
    name_tokens(&spelled)
}

/// Two spellings this close are one word mistyped (Gren for Green, Jenniefr for Jennifer).
const TYPO: f64 = 0.93;

/// Whether `written` is the name `recorded` written another way, rather than another name:
/// without its accents or with its umlauts spelled out (Joao, Mueller), with a letter or two
/// slipped in one part (Robert Gren), or with the given name shortened to a nickname that keeps
/// its first three letters (Rob, Andy for Andrew). Only one part may differ, and a different
/// given name or family name is another name (Anna Smith is not John Smith).
pub fn name_variant(written: &str, recorded: &str) -> bool {
    let (w, r) = (name_tokens(written), name_tokens(recorded));
    if w == r || name_tokens_spelled_out(written) == name_tokens_spelled_out(recorded) {
        return true;
    }
    let r_spelled = name_tokens_spelled_out(recorded);
    let close = |a: &str, b: &str| strsim::jaro_winkler(a, b) >= TYPO;
    for r in [r, r_spelled] {
        if w.len() != r.len() {
            continue;
        }
        if w.len() == 1 {
            if close(&w[0], &r[0]) {
                return true;
            }
            continue;
        }
        let (w_family, r_family) = (&w[w.len() - 1], &r[r.len() - 1]);
        let (w_given, r_given) = (w[..w.len() - 1].join(" "), r[..r.len() - 1].join(" "));
        let nickname = |a: &str, b: &str| {
            let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
            common >= 3
        };
        let given_same = w_given == r_given;
        let family_same = w_family == r_family;
        if given_same && close(w_family, r_family)
            || family_same && (close(&w_given, &r_given) || nickname(&w_given, &r_given))
        {
            return true;
        }
    }
    false
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
    fn a_name_written_another_way_is_the_same_name() {
        for (written, recorded) in [
            ("Joao Silva", "João Silva"),
            ("Alexander Mueller", "Alexander Müller"),
            ("Alexander Muller", "Alexander Müller"),
            ("Robert Gren", "Robert Green"),
            ("Robert Simth", "Robert Smith"),
            ("Emly Watanabe", "Emily Watanabe"),
            ("Jenniefr Larsen", "Jennifer Larsen"),
            ("Rob Garcia", "Robert Garcia"),
            ("Andy White", "Andrew White"),
            ("Larsen, Jennifer", "Jennifer Larsen"),
            ("Jenniefr", "Jennifer"),
        ] {
            assert!(name_variant(written, recorded), "{written} / {recorded}");
        }
        for (written, recorded) in [
            ("Anna Smith", "John Smith"),
            ("Robert Jones", "Robert Smith"),
            ("Becy Johnasson", "Rebecca Johansson"),
            ("Ann Lee Smith", "Ann Smith"),
            ("Jo Smith", "Joseph Smith"),
            ("Smith", "Smithson"),
        ] {
            assert!(!name_variant(written, recorded), "{written} / {recorded}");
        }
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
