//! How messy the evidence is, per `--noise` level.

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseLevel {
    Low,
    Medium,
    High,
}

impl NoiseLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            NoiseLevel::Low => "low",
            NoiseLevel::Medium => "medium",
            NoiseLevel::High => "high",
        }
    }
}

/// Probabilities that the writers draw against. Each is the chance per evidence item (or per
/// reservation where it says so) that the defect appears.
#[derive(Debug, Clone)]
pub struct Noise {
    pub level: NoiseLevel,
    /// A typo in a name (swapped or dropped letter).
    pub typo: f64,
    /// A nickname instead of the first name (Bill for William).
    pub nickname: f64,
    /// Accents dropped or transliterated (Müller → Mueller, José → Jose).
    pub transliterate: f64,
    /// Per payment: the card holder is someone else (a partner, a company).
    pub payer_not_customer: f64,
    /// Per payment: the booking code is missing from Stripe metadata and description.
    pub missing_code_stripe: f64,
    /// Per calendar event or mail: the booking code is left out.
    pub missing_code_text: f64,
    /// A phone number written in a local or odd format rather than E.164.
    pub phone_format: f64,
    /// An email address with different case or a second address of the same person.
    pub email_variant: f64,
    /// Per calendar event: written in UTC or floating time instead of the location's TZID.
    pub tz_convention: f64,
    /// Per reservation: the desk entered the calendar event twice (different UID).
    pub calendar_duplicate: f64,
    /// Per reservation: no calendar event at all.
    pub calendar_missing: f64,
    /// Per reservation cancelled: the event is deleted instead of marked STATUS:CANCELLED.
    pub calendar_cancel_deleted: f64,
    /// Per mail that would be written: it never reached the archive.
    pub mail_missing: f64,
    /// Per booking payment: a declined attempt before the successful one.
    pub failed_payment: f64,
    /// Unrelated Stripe charges per 100 reservations.
    pub unrelated_charges: f64,
    /// Unrelated mails per 100 reservations.
    pub unrelated_mail: f64,
    /// Per confirmation mail: the customer replies or forwards it, quoting it.
    pub reply_or_forward: f64,
    /// Per reservation: the mail is sent again (same content, new Message-ID).
    pub mail_duplicate: f64,
    /// Body lines starting with "From " left unescaped in the mbox (per affected mail).
    pub unescaped_from: f64,
}

impl Noise {
    pub fn new(level: NoiseLevel) -> Noise {
        let (k, extra) = match level {
            NoiseLevel::Low => (0.25, 0.0),
            NoiseLevel::Medium => (1.0, 0.0),
            NoiseLevel::High => (2.0, 1.0),
        };
        Noise {
            level,
            typo: 0.02 * k,
            nickname: 0.08 * k,
            transliterate: 0.10 * k,
            payer_not_customer: 0.05 * k,
            missing_code_stripe: 0.10 * k,
            missing_code_text: 0.08 * k,
            phone_format: 0.30 * k.min(1.5),
            email_variant: 0.05 * k,
            tz_convention: 0.10 * k,
            calendar_duplicate: 0.02 * k,
            calendar_missing: 0.05 * k,
            calendar_cancel_deleted: 0.30 * k.min(1.5),
            mail_missing: 0.04 * k,
            failed_payment: 0.04 * k,
            unrelated_charges: 2.0 * k,
            unrelated_mail: 10.0 * k,
            reply_or_forward: 0.05 * k,
            mail_duplicate: 0.01 * k,
            unescaped_from: 0.002 * extra,
        }
    }
}
