//! The mapping's comparators: how two values of one field agree, in levels that the weights
//! (`weights`) turn into evidence for or against a match.

use chrono::Duration;
use serde::Serialize;

use super::normalize;
use crate::evidence::Value;
use crate::mapping::{parse_duration, Comparator, Method};

/// How two values agree. `Partial` is a weaker agreement with a weight of its own: the family
/// name agrees but the given name does not (Bill and William), a time a little outside the
/// window, the same amount in another currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Disagree,
    Partial,
    Agree,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Agree, Level::Partial, Level::Disagree];

    pub fn index(self) -> usize {
        match self {
            Level::Agree => 0,
            Level::Partial => 1,
            Level::Disagree => 2,
        }
    }
}

/// One comparator of the mapping, ready to run.
#[derive(Clone, Debug)]
pub struct Compare {
    pub field: String,
    pub method: Method,
    pub within: Duration,
    pub tolerance: i64,
}

impl Compare {
    pub fn from_mapping(c: &Comparator) -> Compare {
        Compare {
            field: c.field.get_ref().clone(),
            method: *c.method.get_ref(),
            within: c
                .within
                .as_ref()
                .and_then(|w| parse_duration(w.get_ref()))
                .unwrap_or_else(|| Duration::hours(1)),
            tolerance: c.tolerance.as_ref().map_or(0, |t| *t.get_ref()),
        }
    }

    /// How `a` and `b` agree; `None` when they cannot be compared (a time against a name).
    pub fn level(&self, a: &Value, b: &Value) -> Option<Level> {
        match self.method {
            Method::Exact => Some(agree_if(
                normalize::code(&a.to_string()) == normalize::code(&b.to_string()),
            )),
            Method::Email => Some(agree_if(
                normalize::email(a.as_text()?) == normalize::email(b.as_text()?),
            )),
            Method::Phone => {
                let (x, y) = (
                    normalize::phone(a.as_text()?),
                    normalize::phone(b.as_text()?),
                );
                (x.len() >= 6 && y.len() >= 6).then(|| agree_if(x == y))
            }
            Method::Name => Some(names(a.as_text()?, b.as_text()?)),
            Method::Text => {
                let s = strsim::jaro_winkler(
                    &a.to_string().to_lowercase(),
                    &b.to_string().to_lowercase(),
                );
                Some(if s >= 0.95 {
                    Level::Agree
                } else if s >= 0.85 {
                    Level::Partial
                } else {
                    Level::Disagree
                })
            }
            Method::Time => {
                let d = (instant(a)? - instant(b)?).abs();
                Some(if d <= self.within {
                    Level::Agree
                } else if d <= self.within * 12 {
                    Level::Partial
                } else {
                    Level::Disagree
                })
            }
            Method::Amount => match (a, b) {
                (
                    Value::Money {
                        minor: x,
                        currency: cx,
                    },
                    Value::Money {
                        minor: y,
                        currency: cy,
                    },
                ) => Some(if !cx.eq_ignore_ascii_case(cy) {
                    Level::Disagree
                } else if (x - y).abs() <= self.tolerance {
                    Level::Agree
                } else {
                    Level::Disagree
                }),
                (Value::Int(x), Value::Int(y)) => Some(agree_if((x - y).abs() <= self.tolerance)),
                _ => None,
            },
        }
    }
}

fn agree_if(b: bool) -> Level {
    if b {
        Level::Agree
    } else {
        Level::Disagree
    }
}

fn instant(v: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    match v {
        Value::Time(t) => Some(*t),
        Value::Date(d) => d.and_hms_opt(12, 0, 0).map(|t| t.and_utc()),
        _ => None,
    }
}

/// Names: the family names must agree (after folding accents, up to a typo); then the given
/// names agree fully when they are close or one starts the other (Alex, Alexander), and partly
/// when they do not (a nickname: Bill for William).
pub fn names(a: &str, b: &str) -> Level {
    let (x, y) = (normalize::name_tokens(a), normalize::name_tokens(b));
    let (Some(fx), Some(fy)) = (x.last(), y.last()) else {
        return Level::Disagree;
    };
    if x.len() == 1 && y.len() == 1 && close(fx, fy) {
        // The same one word on both sides (a mononym, or the same nickname): as much as a name
        // can agree.
        return Level::Agree;
    }
    if x.len() == 1 || y.len() == 1 {
        // One word only on one side: a given name or a family name, said once.
        let single = if x.len() == 1 { fx } else { fy };
        let other = if x.len() == 1 { &y } else { &x };
        return if other.iter().any(|t| close(t, single)) {
            Level::Partial
        } else {
            Level::Disagree
        };
    }
    if !close(fx, fy) {
        return Level::Disagree;
    }
    let gx = x[..x.len() - 1].join(" ");
    let gy = y[..y.len() - 1].join(" ");
    if close(&gx, &gy) || gx.starts_with(&gy) || gy.starts_with(&gx) {
        Level::Agree
    } else {
        Level::Partial
    }
}

/// Equal up to a typo or a transliteration (Mueller and Muller).
fn close(a: &str, b: &str) -> bool {
    a == b || (a.len() >= 3 && b.len() >= 3 && strsim::jaro_winkler(a, b) >= 0.9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_agree_through_accents_typos_and_order() {
        assert_eq!(names("José Müller", "Jose Mueller"), Level::Agree);
        assert_eq!(names("Müller, José", "jose muller"), Level::Agree);
        assert_eq!(names("Ann Lee", "Ann Leee"), Level::Agree);
        assert_eq!(names("Alexander Berg", "Alex Berg"), Level::Agree);
        assert_eq!(names("William Smith", "Bill Smith"), Level::Partial);
        assert_eq!(names("James Smith", "James Brown"), Level::Disagree);
        assert_eq!(names("Smith", "James Smith"), Level::Partial);
        assert_eq!(names("Madonna", "madonna"), Level::Agree);
        assert_eq!(names("Jonathon", "Jonathan"), Level::Agree);
        assert_eq!(names("Smith", "Brown"), Level::Disagree);
    }

    #[test]
    fn times_amounts_phones() {
        let c = |method, within: i64| Compare {
            field: "f".into(),
            method,
            within: Duration::hours(within),
            tolerance: 0,
        };
        let t = |s: &str| Value::Time(s.parse().unwrap());
        let time = c(Method::Time, 2);
        assert_eq!(
            time.level(&t("2026-07-01T10:00:00Z"), &t("2026-07-01T11:30:00Z")),
            Some(Level::Agree)
        );
        assert_eq!(
            time.level(&t("2026-07-01T10:00:00Z"), &t("2026-07-01T20:00:00Z")),
            Some(Level::Partial)
        );
        let m = |minor, cur: &str| Value::Money {
            minor,
            currency: cur.into(),
        };
        let amount = c(Method::Amount, 0);
        assert_eq!(
            amount.level(&m(100, "EUR"), &m(100, "eur")),
            Some(Level::Agree)
        );
        assert_eq!(
            amount.level(&m(100, "EUR"), &m(100, "USD")),
            Some(Level::Disagree)
        );
        let phone = c(Method::Phone, 0);
        assert_eq!(
            phone.level(
                &Value::text("+44 20 7946 0958"),
                &Value::text("020 7946 0958")
            ),
            Some(Level::Agree)
        );
        assert_eq!(phone.level(&Value::text("n/a"), &Value::text("12")), None);
    }
}
