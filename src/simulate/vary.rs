//! How people write what the application stores exactly: nicknames, dropped accents, typos,
//! phone numbers in local formats, email addresses with other capitals. Every evidence writer
//! damages its text through these, at the noise level's rates.

use super::noise::Noise;
use super::rng::Rng;
use super::world::{self, Customer};

/// The first name as the customer or a desk clerk writes it.
pub fn first_name(rng: &mut Rng, noise: &Noise, c: &Customer) -> String {
    let mut name = c.first_name.clone();
    if rng.chance(noise.nickname) && !c.nicknames().is_empty() {
        name = rng.pick(c.nicknames()).to_string();
    }
    if rng.chance(noise.transliterate) {
        name = fold(&name);
    }
    if rng.chance(noise.typo) {
        name = typo(rng, &name);
    }
    name
}

pub fn last_name(rng: &mut Rng, noise: &Noise, c: &Customer) -> String {
    let mut name = c.last_name.clone();
    if rng.chance(noise.transliterate) {
        name = fold(&name);
    }
    if rng.chance(noise.typo) {
        name = typo(rng, &name);
    }
    name
}

pub fn full_name(rng: &mut Rng, noise: &Noise, c: &Customer) -> String {
    let first = first_name(rng, noise, c);
    format!("{first} {}", last_name(rng, noise, c))
}

/// The customer's phone, now and then typed the way people type it.
pub fn phone(rng: &mut Rng, noise: &Noise, c: &Customer) -> Option<String> {
    let p = c.phone.as_deref()?;
    Some(if rng.chance(noise.phone_format) {
        odd_phone(rng, p)
    } else {
        p.to_string()
    })
}

/// The address, now and then with other capitals than on file (John.Smith@Gmail.com).
pub fn email(rng: &mut Rng, noise: &Noise, email: &str) -> String {
    if !rng.chance(noise.email_variant) {
        return email.to_string();
    }
    let mut up = true;
    email
        .chars()
        .map(|ch| {
            let out = if up { ch.to_ascii_uppercase() } else { ch };
            up = matches!(ch, '.' | '@');
            out
        })
        .collect()
}

/// Accents dropped the way `world::ascii_fold` does, keeping a capital a capital (Ł → L).
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let folded = world::ascii_fold(&c.to_string());
        let mut chars = folded.chars();
        match chars.next() {
            Some(first) if c.is_uppercase() => {
                out.extend(first.to_uppercase());
                out.extend(chars);
            }
            _ => out.push_str(&folded),
        }
    }
    out
}

/// A slip of the keyboard: two letters swapped, or one dropped; never the first letter.
pub fn typo(rng: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_string();
    }
    let i = 1 + rng.below(chars.len() as u64 - 2) as usize;
    if rng.chance(0.5) && chars[i] != chars[i + 1] {
        chars.swap(i, i + 1);
    } else {
        chars.remove(i);
    }
    chars.into_iter().collect()
}

/// Calling codes of the simulated customers' countries.
const CALLING_CODES: &[&str] = &["351", "49", "44", "81", "1"];

/// An E.164 number as a person types it: national format, spaced, or with 00 for +.
pub fn odd_phone(rng: &mut Rng, e164: &str) -> String {
    let Some(digits) = e164.strip_prefix('+') else {
        return e164.to_string();
    };
    let Some(cc) = CALLING_CODES
        .iter()
        .copied()
        .find(|cc| digits.starts_with(cc))
    else {
        return format!("00{digits}");
    };
    let rest = &digits[cc.len()..];
    match rng.below(3) {
        0 => national_phone(cc, rest).unwrap_or_else(|| format!("00{digits}")),
        1 => format!("+{cc} {}", groups(rest, 3)),
        _ => format!("00{digits}"),
    }
}

fn national_phone(cc: &str, rest: &str) -> Option<String> {
    Some(match cc {
        "351" => groups(rest, 3),
        "49" => format!("0{} {}", rest.get(..3)?, rest.get(3..)?),
        "44" => format!("0{} {}", rest.get(..4)?, rest.get(4..)?),
        "81" => format!("0{}-{}-{}", rest.get(..2)?, rest.get(2..6)?, rest.get(6..)?),
        "1" => format!(
            "({}) {}-{}",
            rest.get(..3)?,
            rest.get(3..6)?,
            rest.get(6..)?
        ),
        _ => return None,
    })
}

fn groups(digits: &str, size: usize) -> String {
    let chars: Vec<char> = digits.chars().collect();
    chars
        .chunks(size)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::noise::NoiseLevel;

    #[test]
    fn odd_phones_keep_the_subscriber_digits() {
        let mut rng = Rng::new(1);
        for e164 in [
            "+351912345678",
            "+4915112345678",
            "+447123456789",
            "+12125550123",
            "+819012345678",
        ] {
            let subscriber = &e164[e164.len() - 7..];
            for _ in 0..20 {
                let odd = odd_phone(&mut rng, e164);
                assert_ne!(odd, e164);
                let digits: String = odd.chars().filter(char::is_ascii_digit).collect();
                assert!(digits.ends_with(subscriber), "{e164} became {odd}");
            }
        }
    }

    #[test]
    fn folding_keeps_capitals_and_typos_keep_the_initial() {
        assert_eq!(fold("Łukasz Wójcik"), "Lukasz Wojcik");
        assert_eq!(fold("Müller"), "Mueller");
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            let t = typo(&mut rng, "Johansson");
            assert!(
                t.starts_with('J') && t != "Johansson" && t.len() >= 8,
                "{t}"
            );
        }
    }

    #[test]
    fn email_variants_are_the_same_mailbox() {
        let mut noise = Noise::new(NoiseLevel::High);
        noise.email_variant = 1.0;
        let v = email(&mut Rng::new(1), &noise, "john.smith@gmail.com");
        assert_eq!(v, "John.Smith@Gmail.Com");
        assert_eq!(v.to_lowercase(), "john.smith@gmail.com");
    }
}
