//! The booking inbox, bookings@rentico.example, archived as one mboxrd file.
//!
//! The inbox holds the copies (BCC) of what the booking system sent: sign-ups, confirmations,
//! changes, cancellations, no-show notices and thank-you mails; the Stripe receipts that Stripe
//! copies to the account; and whatever else arrived: customers replying to or forwarding their
//! confirmation, suppliers, newsletters, spam. Only messages dated in the gap are archived, since
//! older ones tell nothing that the restored backup does not already hold.
//!
//! With a million reservations the archive runs to gigabytes, so it is written message by message:
//! the plan (a date and a kind per message) is small, the rendered mbox is not. Every message draws
//! from its own random streams, keyed by what it is about, so that a reply can render again the
//! confirmation it quotes and a duplicate can repeat its original byte for byte.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use chrono_tz::Tz;

use super::manifest::Source;
use super::names;
use super::noise::Noise;
use super::rng::{Rng, BASE62};
use super::vary;
use super::world::{Change, Customer, Payment, PaymentKind, ResVersion, Reservation, World};
use super::{io_err, Ctx, Manifest, Result, Written};

const INBOX: &str = "bookings@rentico.example";
const COMPANY_DOMAIN: &str = "rentico.example";
const STRIPE_SENDER: &str = "receipts+acct_1Rentico@stripe.com";
const FILE_NAME: &str = "bookings.mbox";
const SHOWN_PATH: &str = "evidence/mail/bookings.mbox";
/// The thank-you job skips some rentals (returned at a desk without a mail address on file, or
/// the job failed that night) at every noise level, so this is not a noise knob.
const COMPLETED_MAIL_SHARE: f64 = 0.8;
const JSON_LD_SHARE: f64 = 0.4;
/// Stands for the charset in an HTML meta tag until the part's charset is chosen.
const CHARSET_TOKEN: &str = "%CHARSET%";

const STREAM_DATE: u64 = 1;
const STREAM_BODY: u64 = 2;
const STREAM_ID: u64 = 3;
const STREAM_BOUNDARY: u64 = 4;
const STREAM_CUT: u64 = 5;

pub fn write(ctx: &Ctx, dir: &Path, manifest: &mut Manifest) -> Result<Written> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(FILE_NAME);
    let (mailer, mut rng) = Mailer::new(ctx);
    let plan = mailer.plan(&mut rng);
    let file = File::create(&path).map_err(io_err(&path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let count = plan.messages.len();
    for (i, m) in plan.messages.iter().enumerate() {
        let msg = mailer.render(m.kind, m.at);
        for (table, id) in &msg.mentions {
            manifest.mention(table, *id, Source::Mail, msg.message_id.clone());
        }
        // Whoever copied the archive off the dying server got all but the tail of the last message.
        let cut = (i + 1 == count).then(|| mailer.cut_point(m.kind, &msg));
        emit(&mut out, &msg, cut).map_err(io_err(&path))?;
    }
    out.flush().map_err(io_err(&path))?;
    Ok(Written {
        files: vec![SHOWN_PATH.into()],
        items: count as u64,
    })
}

/// What a message is about: indices into the world's vectors, so that the plan stays small and
/// sorts into a stable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    SignUp {
        customer: u32,
    },
    /// `copy` > 0: the system sent the confirmation again.
    Booked {
        res: u32,
        copy: u32,
    },
    Modified {
        res: u32,
        version: u32,
    },
    Cancelled {
        res: u32,
        version: u32,
    },
    NoShow {
        res: u32,
        version: u32,
    },
    Completed {
        res: u32,
        version: u32,
    },
    Receipt {
        payment: u32,
    },
    Refund {
        payment: u32,
        refund: u32,
    },
    Reply {
        res: u32,
    },
    Forward {
        res: u32,
    },
    Unrelated {
        n: u32,
    },
}

impl Kind {
    fn key(self) -> [u64; 3] {
        let (tag, a, b) = match self {
            Kind::SignUp { customer } => (1, customer, 0),
            Kind::Booked { res, copy } => (2, res, copy),
            Kind::Modified { res, version } => (3, res, version),
            Kind::Cancelled { res, version } => (4, res, version),
            Kind::NoShow { res, version } => (5, res, version),
            Kind::Completed { res, version } => (6, res, version),
            Kind::Receipt { payment } => (7, payment, 0),
            Kind::Refund { payment, refund } => (8, payment, refund),
            Kind::Reply { res } => (9, res, 0),
            Kind::Forward { res } => (10, res, 0),
            Kind::Unrelated { n } => (11, n, 0),
        };
        [tag, u64::from(a), u64::from(b)]
    }

    /// The message whose content this one repeats: a resent confirmation is the original again.
    fn content(self) -> Kind {
        match self {
            Kind::Booked { res, .. } => Kind::Booked { res, copy: 0 },
            k => k,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Planned {
    at: DateTime<Utc>,
    kind: Kind,
}

#[derive(Debug, Default)]
struct Plan {
    /// In archive order: by date, ties by kind.
    messages: Vec<Planned>,
    /// Mail that would have been written but is not in the archive: lost, or dated after the
    /// incident.
    lost: Vec<Kind>,
}

struct Mailer<'a> {
    world: &'a World,
    noise: &'a Noise,
    salt: u64,
    /// Payments by reservation, flat: `pay_index[pay_start[i]..pay_start[i + 1]]` are reservation
    /// i's. A million gap reservations come with ten times as many before the gap, and a `Vec` per
    /// reservation would cost more than the rest of the writer.
    pay_start: Vec<u32>,
    pay_index: Vec<u32>,
}

fn index_payments(w: &World) -> (Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; w.reservations.len() + 1];
    for p in &w.payments {
        start[p.reservation_id as usize] += 1;
    }
    let mut total = 0;
    for s in start.iter_mut() {
        total += *s;
        *s = total;
    }
    let mut next = start.clone();
    let mut index = vec![0u32; w.payments.len()];
    for (k, p) in w.payments.iter().enumerate() {
        let slot = &mut next[(p.reservation_id - 1) as usize];
        index[*slot as usize] = k as u32;
        *slot += 1;
    }
    (start, index)
}

fn mix(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<'a> Mailer<'a> {
    fn new(ctx: &Ctx<'a>) -> (Mailer<'a>, Rng) {
        let mut rng = Rng::fork(ctx.seed, "mail");
        let salt = rng.next_u64();
        let (pay_start, pay_index) = index_payments(ctx.world);
        let mailer = Mailer {
            world: ctx.world,
            noise: ctx.noise,
            salt,
            pay_start,
            pay_index,
        };
        (mailer, rng)
    }

    fn rng(&self, kind: Kind, stream: u64) -> Rng {
        let [tag, a, b] = kind.key();
        let mut h = self.salt;
        for x in [tag, a, b, stream] {
            h = mix(h ^ x);
        }
        Rng::new(h)
    }

    fn res(&self, res: u32) -> &'a Reservation {
        &self.world.reservations[res as usize]
    }

    fn version(&self, res: u32, version: u32) -> &'a ResVersion {
        &self.res(res).versions[version as usize]
    }

    fn customer_of(&self, r: &Reservation) -> &'a Customer {
        self.world.customer(r.customer_id)
    }

    fn payments_of(&self, res: u32) -> impl Iterator<Item = &'a Payment> + '_ {
        let w = self.world;
        let range =
            self.pay_start[res as usize] as usize..self.pay_start[res as usize + 1] as usize;
        self.pay_index[range]
            .iter()
            .map(move |&i| &w.payments[i as usize])
    }

    /// When the message was sent: a pure function of the kind, so that a reply can tell when the
    /// confirmation it quotes was sent.
    fn date_of(&self, kind: Kind) -> DateTime<Utc> {
        let w = self.world;
        let mut rng = self.rng(kind, STREAM_DATE);
        let mut after =
            |t: DateTime<Utc>, lo: i64, hi: i64| t + Duration::seconds(rng.range(lo, hi));
        match kind {
            Kind::SignUp { customer } => after(w.customers[customer as usize].created_at, 5, 120),
            Kind::Booked { res, copy: 0 } => {
                // Sent once the card is charged.
                match self
                    .payments_of(res)
                    .find(|p| p.kind == PaymentKind::Booking)
                {
                    Some(p) => after(p.paid_at, 3, 90),
                    None => after(self.res(res).created_at, 60, 600),
                }
            }
            Kind::Booked { res, .. } => {
                after(self.date_of(Kind::Booked { res, copy: 0 }), 120, 900)
            }
            Kind::Modified { res, version } => after(self.version(res, version).at, 5, 300),
            Kind::Cancelled { res, version } => after(self.version(res, version).at, 30, 600),
            Kind::NoShow { res, version } => after(self.version(res, version).at, 60, 1800),
            Kind::Completed { res, version } => {
                after(self.version(res, version).at, 1800, 6 * 3600)
            }
            Kind::Receipt { payment } => after(w.payments[payment as usize].paid_at, 1, 20),
            Kind::Refund { payment, refund } => after(
                w.payments[payment as usize].refunds[refund as usize].at,
                1,
                30,
            ),
            Kind::Reply { res } | Kind::Forward { res } => {
                after(self.date_of(Kind::Booked { res, copy: 0 }), 600, 2 * 86_400)
            }
            Kind::Unrelated { .. } => {
                let secs = (w.incident_at - w.restore_point).num_seconds().max(1);
                after(w.restore_point, 0, secs - 1)
            }
        }
    }

    fn plan(&self, rng: &mut Rng) -> Plan {
        let w = self.world;
        let noise = self.noise;
        let mut plan = Plan::default();
        for (i, c) in w.customers.iter().enumerate() {
            if w.in_gap(c.created_at) {
                self.offer(&mut plan, rng, Kind::SignUp { customer: i as u32 });
            }
        }
        for (i, r) in w.reservations.iter().enumerate() {
            let res = i as u32;
            for (j, v) in r.versions.iter().enumerate() {
                if !w.in_gap(v.at) {
                    continue;
                }
                let version = j as u32;
                match v.change {
                    Change::Booked => {
                        if self.offer(&mut plan, rng, Kind::Booked { res, copy: 0 }) {
                            if rng.chance(noise.mail_duplicate) {
                                self.place(&mut plan, Kind::Booked { res, copy: 1 });
                            }
                            if rng.chance(noise.reply_or_forward) {
                                let kind = if rng.chance(0.6) {
                                    Kind::Reply { res }
                                } else {
                                    Kind::Forward { res }
                                };
                                self.place(&mut plan, kind);
                            }
                        }
                    }
                    Change::Modified => {
                        self.offer(&mut plan, rng, Kind::Modified { res, version });
                    }
                    Change::Cancelled => {
                        self.offer(&mut plan, rng, Kind::Cancelled { res, version });
                    }
                    Change::NoShow => {
                        self.offer(&mut plan, rng, Kind::NoShow { res, version });
                    }
                    Change::Completed => {
                        if rng.chance(COMPLETED_MAIL_SHARE) {
                            self.offer(&mut plan, rng, Kind::Completed { res, version });
                        }
                    }
                }
            }
        }
        for (i, p) in w.payments.iter().enumerate() {
            let payment = i as u32;
            if w.in_gap(p.paid_at) {
                self.offer(&mut plan, rng, Kind::Receipt { payment });
            }
            for (k, refund) in p.refunds.iter().enumerate() {
                if w.in_gap(refund.at) {
                    self.offer(
                        &mut plan,
                        rng,
                        Kind::Refund {
                            payment,
                            refund: k as u32,
                        },
                    );
                }
            }
        }
        let gap_reservations = w
            .reservations
            .iter()
            .filter(|r| w.in_gap(r.created_at))
            .count();
        let unrelated = (gap_reservations as f64 * noise.unrelated_mail / 100.0).round() as u32;
        for n in 0..unrelated {
            self.place(&mut plan, Kind::Unrelated { n });
        }
        plan.messages.sort_by_key(|m| (m.at, m.kind));
        plan
    }

    /// Mail the system would have archived, unless it got lost; `true` when it is in the archive.
    fn offer(&self, plan: &mut Plan, rng: &mut Rng, kind: Kind) -> bool {
        if rng.chance(self.noise.mail_missing) {
            plan.lost.push(kind);
            return false;
        }
        self.place(plan, kind)
    }

    fn place(&self, plan: &mut Plan, kind: Kind) -> bool {
        let at = self.date_of(kind);
        if !self.world.in_gap(at) {
            plan.lost.push(kind);
            return false;
        }
        plan.messages.push(Planned { at, kind });
        true
    }

    fn render(&self, kind: Kind, at: DateTime<Utc>) -> Msg {
        let content = kind.content();
        let mut rng = self.rng(content, STREAM_BODY);
        let draft = match content {
            Kind::SignUp { customer } => self.sign_up(&mut rng, customer),
            Kind::Booked { res, .. } => self.booked_with(&mut rng, res),
            Kind::Modified { res, version } => self.modified(&mut rng, res, version),
            Kind::Cancelled { res, version } => self.cancelled(&mut rng, res, version),
            Kind::NoShow { res, version } => self.no_show(&mut rng, res, version),
            Kind::Completed { res, version } => self.completed(&mut rng, res, version),
            Kind::Receipt { payment } => self.receipt(&mut rng, payment),
            Kind::Refund { payment, refund } => self.refund_receipt(&mut rng, payment, refund),
            Kind::Reply { res } => self.customer_reply(&mut rng, res, false),
            Kind::Forward { res } => self.customer_reply(&mut rng, res, true),
            Kind::Unrelated { n } => self.unrelated(&mut rng, n),
        };
        self.assemble(kind, at, draft, &mut rng)
    }

    fn message_id(&self, kind: Kind, at: DateTime<Utc>, domain: &str) -> String {
        const LOWER: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        const HEX: &[u8] = b"0123456789abcdef";
        let mut rng = self.rng(kind, STREAM_ID);
        match rng.below(3) {
            0 => format!(
                "<{}.{}@{domain}>",
                at.format("%Y%m%d%H%M%S"),
                rng.string(LOWER, 20)
            ),
            1 => format!(
                "<{}-{}-{}-{}-{}@{domain}>",
                rng.string(HEX, 8),
                rng.string(HEX, 4),
                rng.string(HEX, 4),
                rng.string(HEX, 4),
                rng.string(HEX, 12)
            ),
            _ => format!("<{}.{}@{domain}>", rng.string(BASE62, 24), at.timestamp()),
        }
    }

    fn assemble(&self, kind: Kind, at: DateTime<Utc>, d: Draft, rng: &mut Rng) -> Msg {
        let message_id = self.message_id(kind, at, &d.id_domain);
        // A resent mail is rendered again, so it gets boundaries of its own.
        let mut boundary_rng = self.rng(kind, STREAM_BOUNDARY);
        let (content_headers, body, cut_before) = mime(rng, &mut boundary_rng, &d.body, d.enc);
        let mut head = String::with_capacity(512);
        head.push_str(&format!("Return-Path: <{}>\n", d.sender));
        head.push_str(&format!("Delivered-To: {INBOX}\n"));
        head.push_str(&format!("Date: {}\n", date_header(rng, at, d.tz)));
        head.push_str(&format!("From: {}\n", d.from));
        head.push_str(&format!("To: {}\n", d.to));
        head.push_str(&format!("Subject: {}\n", header_text(rng, &d.subject)));
        head.push_str(&format!("Message-ID: {message_id}\n"));
        for h in &d.extra {
            head.push_str(h);
            head.push('\n');
        }
        head.push_str("MIME-Version: 1.0\n");
        head.push_str(&content_headers);
        head.push('\n');
        Msg {
            sender: d.sender,
            at,
            message_id,
            head,
            body,
            cut_before,
            keep_from: d.keep_from,
            mentions: d.mentions,
        }
    }

    /// Where the last message is cut: a third to two thirds into the body, always before a
    /// multipart's closing boundary.
    fn cut_point(&self, kind: Kind, msg: &Msg) -> usize {
        let mut rng = self.rng(kind, STREAM_CUT);
        let pct = rng.range(30, 70) as usize;
        (msg.cut_before * pct / 100)
            .max(1)
            .min(msg.body.len().saturating_sub(1))
    }

    // ---- Names as people and templates write them ----

    fn noisy_first(&self, rng: &mut Rng, c: &Customer) -> String {
        vary::first_name(rng, self.noise, c)
    }

    fn noisy_full(&self, rng: &mut Rng, c: &Customer) -> String {
        vary::full_name(rng, self.noise, c)
    }

    fn phone(&self, rng: &mut Rng, c: &Customer) -> Option<String> {
        vary::phone(rng, self.noise, c)
    }

    /// The address a customer writes from: now and then with other capitals than on file.
    fn sender_email(&self, rng: &mut Rng, email: &str) -> String {
        vary::email(rng, self.noise, email)
    }

    // ---- The booking system's mail ----

    fn new_letter(&self, rng: &mut Rng, title: String, greeting: String) -> Letter {
        let layout = match rng.weighted(&[30, 50, 20]) {
            0 => Layout::Text,
            1 => Layout::Alternative,
            _ => Layout::Html,
        };
        Letter {
            title,
            greeting,
            before: Vec::new(),
            rows: Vec::new(),
            after: Vec::new(),
            signoff: (*rng.pick(&[
                "Safe travels,\nThe Rentico team",
                "Kind regards,\nRentico Reservations",
                "Thank you,\nRentico",
            ]))
            .to_string(),
            caps: rng.chance(0.35),
            time_style: rng.below(4),
            money_style: rng.below(3),
            layout,
            json_ld: None,
            json_in_head: rng.chance(0.5),
        }
    }

    fn greeting(&self, rng: &mut Rng, c: &Customer) -> String {
        let first = self.noisy_first(rng, c);
        match rng.below(3) {
            0 => format!("Hi {first},"),
            1 => format!("Dear {first},"),
            _ => format!("Hello {first},"),
        }
    }

    /// A mail from the booking system to a customer.
    fn rentico_mail(&self, rng: &mut Rng, c: &Customer, tz: Tz, letter: Letter) -> Draft {
        let from = rentico_from(rng);
        let to = mailbox(rng, &c.full_name(), &c.email);
        let text = letter.text();
        let body = match letter.layout {
            Layout::Text => Body::Text(text.clone()),
            Layout::Alternative => Body::Alt {
                text: text.clone(),
                html: letter.html(),
            },
            Layout::Html => Body::Html(letter.html()),
        };
        Draft {
            sender: INBOX.into(),
            from,
            to,
            subject: letter.title,
            tz: Some(tz),
            id_domain: COMPANY_DOMAIN.into(),
            extra: Vec::new(),
            body,
            quote_text: text,
            mentions: Vec::new(),
            keep_from: None,
            enc: Enc::ANY,
        }
    }

    /// The booking's details as the templates list them.
    fn details(
        &self,
        rng: &mut Rng,
        r: &Reservation,
        v: &ResVersion,
        letter: &Letter,
        show_code: bool,
        contact: bool,
    ) -> Vec<(String, String)> {
        let w = self.world;
        let c = self.customer_of(r);
        let pickup = w.location(v.pickup_location_id);
        let ret = w.location(v.return_location_id);
        let car = w.vehicle(v.vehicle_id);
        let (time_style, money_style) = (letter.time_style, letter.money_style);
        let label = |plain: &str, upper: &str| letter.label(plain, upper);
        let mut rows = Vec::new();
        if show_code {
            rows.push((label("Booking code", "BOOKING"), r.code.clone()));
        }
        rows.push((label("Name", "DRIVER"), c.full_name()));
        if contact {
            rows.push((label("Email", "EMAIL"), c.email.clone()));
            if let Some(phone) = self.phone(rng, c) {
                rows.push((label("Phone", "PHONE"), phone));
            }
        }
        rows.push((
            label("Pick-up", "PICK-UP"),
            format!(
                "{}\n{}\n{}",
                local_time(v.pickup_at, pickup.tz, time_style),
                pickup.spec.name,
                pickup.spec.address
            ),
        ));
        rows.push((
            label("Return", "RETURN"),
            format!(
                "{}\n{}\n{}",
                local_time(v.return_at, ret.tz, time_style),
                ret.spec.name,
                ret.spec.address
            ),
        ));
        rows.push((
            label("Vehicle", "CAR"),
            format!("{} {} ({}) or similar", car.make, car.model, car.plate),
        ));
        rows.push((
            label("Total", "PRICE"),
            money(v.total_minor, r.currency, money_style),
        ));
        rows
    }

    fn json_ld(
        &self,
        r: &Reservation,
        v: &ResVersion,
        status: &str,
        modified: Option<DateTime<Utc>>,
    ) -> String {
        let w = self.world;
        let c = self.customer_of(r);
        let pickup = w.location(v.pickup_location_id);
        let ret = w.location(v.return_location_id);
        let car = w.vehicle(v.vehicle_id);
        let mut value = serde_json::json!({
            "@context": "http://schema.org",
            "@type": "RentalCarReservation",
            "reservationNumber": r.code,
            "reservationStatus": status,
            "underName": { "@type": "Person", "name": c.full_name(), "email": c.email },
            "reservationFor": {
                "@type": "Car",
                "name": format!("{} {}", car.make, car.model),
                "model": car.model,
                "brand": { "@type": "Brand", "name": car.make },
            },
            "pickupLocation": { "@type": "Place", "name": pickup.spec.name, "address": pickup.spec.address },
            "pickupTime": iso_local(v.pickup_at, pickup.tz),
            "dropoffLocation": { "@type": "Place", "name": ret.spec.name, "address": ret.spec.address },
            "dropoffTime": iso_local(v.return_at, ret.tz),
            "totalPrice": decimal(v.total_minor, r.currency),
            "priceCurrency": r.currency,
        });
        if let Some(t) = modified {
            value["modifiedTime"] =
                serde_json::Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        // "</" would end the script element early.
        serde_json::to_string_pretty(&value)
            .unwrap_or_default()
            .replace("</", "<\\/")
    }

    fn sign_up(&self, rng: &mut Rng, customer: u32) -> Draft {
        let c = &self.world.customers[customer as usize];
        let first = self.noisy_first(rng, c);
        let mut letter = self.new_letter(
            rng,
            format!("Welcome to Rentico, {first}!"),
            format!("Hi {first},"),
        );
        letter.before.push(
            "Welcome to Rentico! Your account is ready, and these are the details we have for you:"
                .into(),
        );
        let (name, email) = (letter.label("Name", "NAME"), letter.label("Email", "EMAIL"));
        letter.rows.push((name, c.full_name()));
        letter.rows.push((email, c.email.clone()));
        if let Some(phone) = self.phone(rng, c) {
            let label = letter.label("Phone", "PHONE");
            letter.rows.push((label, phone));
        }
        letter.after.push(
            "Book a car at our desks in Lisbon, Porto, Berlin, Munich, London, New York and Tokyo at https://rentico.example, and keep your bookings in one place."
                .into(),
        );
        let mut d = self.rentico_mail(rng, c, country_tz(c.country), letter);
        d.mentions.push(("customers", c.id));
        d
    }

    /// The confirmation, also rendered again when a customer quotes it.
    fn booked(&self, res: u32) -> Draft {
        let mut rng = self.rng(Kind::Booked { res, copy: 0 }, STREAM_BODY);
        self.booked_with(&mut rng, res)
    }

    fn booked_with(&self, rng: &mut Rng, res: u32) -> Draft {
        let r = self.res(res);
        let v = &r.versions[0];
        let c = self.customer_of(r);
        let greeting = self.greeting(rng, c);
        let mut letter = self.new_letter(
            rng,
            format!("Your Rentico booking {} is confirmed", r.code),
            greeting,
        );
        letter.before.push(if letter.caps {
            format!(
                "your reservation {} has been confirmed. Please find the details below.",
                r.code
            )
        } else {
            format!(
                "Thank you for booking with Rentico. Your booking {} is confirmed.",
                r.code
            )
        });
        letter.rows = self.details(rng, r, v, &letter, true, true);
        letter.after.push(format!(
            "Please bring your driving licence and the card you paid with. You can manage your booking at https://rentico.example/manage?code={}.",
            r.code
        ));
        if letter.layout != Layout::Text && rng.chance(JSON_LD_SHARE) {
            letter.json_ld =
                Some(self.json_ld(r, v, "http://schema.org/ReservationConfirmed", None));
        }
        let tz = self.world.location(v.pickup_location_id).tz;
        let mut d = self.rentico_mail(rng, c, tz, letter);
        d.mentions.push(("reservations", r.id));
        d.mentions.push(("customers", c.id));
        d
    }

    fn modified(&self, rng: &mut Rng, res: u32, version: u32) -> Draft {
        let r = self.res(res);
        let v = self.version(res, version);
        let before = &r.versions[version.saturating_sub(1) as usize];
        let c = self.customer_of(r);
        let show_code = !rng.chance(self.noise.missing_code_text);
        let subject = if show_code {
            format!("Your booking {} has been changed", r.code)
        } else {
            "Your booking has been changed".to_string()
        };
        let greeting = self.greeting(rng, c);
        let mut letter = self.new_letter(rng, subject, greeting);
        letter.before.push(if show_code {
            format!(
                "We have changed your booking {} as requested. These are the new details:",
                r.code
            )
        } else {
            "We have changed your booking as requested. These are the new details:".to_string()
        });
        letter.rows = self.details(rng, r, v, &letter, show_code, false);
        let w = self.world;
        let old_loc = w.location(before.pickup_location_id);
        let old_car = w.vehicle(before.vehicle_id);
        letter.after.push(format!(
            "Before the change: pick-up {} at {}, return {}, {} {}.",
            local_time(before.pickup_at, old_loc.tz, 0),
            old_loc.spec.name,
            local_time(
                before.return_at,
                w.location(before.return_location_id).tz,
                0
            ),
            old_car.make,
            old_car.model
        ));
        let diff = v.total_minor - before.total_minor;
        let style = letter.money_style;
        if diff > 0 {
            letter.after.push(format!(
                "The difference of {} has been charged to your card.",
                money(diff, r.currency, style)
            ));
        } else if diff < 0 {
            letter.after.push(format!(
                "We have refunded the difference of {} to your card.",
                money(-diff, r.currency, style)
            ));
        }
        if show_code && letter.layout != Layout::Text && rng.chance(JSON_LD_SHARE) {
            letter.json_ld =
                Some(self.json_ld(r, v, "http://schema.org/ReservationConfirmed", Some(v.at)));
        }
        let tz = w.location(v.pickup_location_id).tz;
        let mut d = self.rentico_mail(rng, c, tz, letter);
        d.mentions.push(("reservations", r.id));
        d
    }

    fn cancelled(&self, rng: &mut Rng, res: u32, version: u32) -> Draft {
        let r = self.res(res);
        let v = self.version(res, version);
        let c = self.customer_of(r);
        let refunded: i64 = self
            .payments_of(res)
            .flat_map(|p| p.refunds.iter())
            .filter(|rf| rf.at >= v.at)
            .map(|rf| rf.amount_minor)
            .sum();
        let show_code = !rng.chance(self.noise.missing_code_text);
        let subject = if show_code {
            format!("Booking {} cancelled", r.code)
        } else {
            "Your booking has been cancelled".to_string()
        };
        let greeting = self.greeting(rng, c);
        let mut letter = self.new_letter(rng, subject, greeting);
        letter.before.push(if show_code {
            format!("As requested, your booking {} has been cancelled.", r.code)
        } else {
            "As requested, your booking has been cancelled.".to_string()
        });
        letter.rows = self.details(rng, r, v, &letter, show_code, false);
        let style = letter.money_style;
        letter
            .rows
            .push(("Refund".into(), money(refunded, r.currency, style)));
        letter.after.push(if refunded > 0 {
            format!(
                "We have refunded {} to the card you paid with. It can take 5 to 10 days to show on your statement.",
                money(refunded, r.currency, style)
            )
        } else {
            "Cancellations this close to pick-up are not refundable under our terms.".to_string()
        });
        if show_code && letter.layout != Layout::Text && rng.chance(JSON_LD_SHARE) {
            letter.json_ld =
                Some(self.json_ld(r, v, "http://schema.org/ReservationCancelled", Some(v.at)));
        }
        let tz = self.world.location(v.pickup_location_id).tz;
        let mut d = self.rentico_mail(rng, c, tz, letter);
        d.mentions.push(("reservations", r.id));
        d
    }

    fn no_show(&self, rng: &mut Rng, res: u32, version: u32) -> Draft {
        let r = self.res(res);
        let v = self.version(res, version);
        let c = self.customer_of(r);
        let loc = self.world.location(v.pickup_location_id);
        let greeting = self.greeting(rng, c);
        let mut letter =
            self.new_letter(rng, format!("Missed pick-up: booking {}", r.code), greeting);
        letter.before.push(format!(
            "We waited for you at {} on {}, but the car was not collected. We have released the vehicle and closed booking {} as a no-show.",
            loc.spec.name,
            local_time(v.pickup_at, loc.tz, letter.time_style),
            r.code
        ));
        letter.rows = self.details(rng, r, v, &letter, true, false);
        letter.after.push("Under our terms the rental price is not refunded. If you think this is a mistake, just reply to this email.".into());
        let mut d = self.rentico_mail(rng, c, loc.tz, letter);
        d.mentions.push(("reservations", r.id));
        d
    }

    fn completed(&self, rng: &mut Rng, res: u32, version: u32) -> Draft {
        let r = self.res(res);
        let v = self.version(res, version);
        let c = self.customer_of(r);
        let w = self.world;
        let ret = w.location(v.return_location_id);
        let car = w.vehicle(v.vehicle_id);
        let greeting = self.greeting(rng, c);
        let mut letter = self.new_letter(
            rng,
            "Thanks for renting with Rentico – your rental is complete".into(),
            greeting,
        );
        letter.before.push(format!(
            "Thanks for renting with Rentico. You returned the {} {} at {} on {}, and your rental is now complete.",
            car.make,
            car.model,
            ret.spec.name,
            local_time(v.at, ret.tz, letter.time_style)
        ));
        letter.rows = self.details(rng, r, v, &letter, true, false);
        letter.after.push(format!(
            "How did it go? Tell us in two minutes: https://rentico.example/feedback?b={}",
            r.code
        ));
        let mut d = self.rentico_mail(rng, c, ret.tz, letter);
        d.mentions.push(("reservations", r.id));
        d
    }

    // ---- Stripe ----

    fn stripe_mail(
        &self,
        rng: &mut Rng,
        p: &Payment,
        subject: String,
        text: String,
        html: String,
    ) -> Draft {
        let from = if rng.chance(0.5) {
            format!("Rentico <{STRIPE_SENDER}>")
        } else {
            format!("\"Rentico\" <{STRIPE_SENDER}>")
        };
        Draft {
            sender: STRIPE_SENDER.into(),
            from,
            to: p.payer.email.clone(),
            subject,
            tz: None,
            id_domain: "stripe.com".into(),
            extra: vec!["X-Stripe-Account: acct_1Rentico".into()],
            body: Body::Alt {
                text: text.clone(),
                html,
            },
            quote_text: text,
            mentions: vec![("payments", p.id)],
            keep_from: None,
            enc: Enc {
                base64: true,
                legacy_charsets: false,
            },
        }
    }

    fn stripe_description(&self, p: &Payment) -> String {
        if p.code_in_stripe {
            format!(
                "Reservation {}",
                self.world.reservation(p.reservation_id).code
            )
        } else {
            "Car rental".to_string()
        }
    }

    fn receipt(&self, rng: &mut Rng, payment: u32) -> Draft {
        let p = &self.world.payments[payment as usize];
        let amount = money(p.amount_minor, p.currency, 1);
        let date = p.paid_at.format("%B %-d, %Y").to_string();
        let method = format!("{} – {}", card_brand(p.card.brand), p.card.last4);
        let desc = self.stripe_description(p);
        let text = format!(
            "Receipt from Rentico\nReceipt #{rn}\n\nAmount paid: {amount}\nDate paid: {date}\nPayment method: {method}\n\nSummary\n{desc}    {amount}\nAmount charged    {amount}\n\nIf you have any questions, contact us at {INBOX}.\n\nYou're receiving this email because you made a purchase at Rentico, which partners with Stripe to provide invoicing and payment processing.\n",
            rn = p.receipt_number
        );
        let html = stripe_html(
            "Receipt from Rentico",
            &p.receipt_number,
            &[
                ("Amount paid", &amount),
                ("Date paid", &date),
                ("Payment method", &method),
            ],
            &[(&desc, &amount), ("Amount charged", &amount)],
        );
        let mut d = self.stripe_mail(
            rng,
            p,
            format!("Your receipt from Rentico #{}", p.receipt_number),
            text,
            html,
        );
        if p.code_in_stripe {
            d.mentions.push(("reservations", p.reservation_id));
        }
        d
    }

    fn refund_receipt(&self, rng: &mut Rng, payment: u32, refund: u32) -> Draft {
        let p = &self.world.payments[payment as usize];
        let rf = &p.refunds[refund as usize];
        let amount = money(rf.amount_minor, p.currency, 1);
        let original = money(p.amount_minor, p.currency, 1);
        let date = rf.at.format("%B %-d, %Y").to_string();
        let method = format!("{} – {}", card_brand(p.card.brand), p.card.last4);
        let desc = self.stripe_description(p);
        let text = format!(
            "Refund from Rentico\nReceipt #{rn}\n\nAmount refunded: {amount}\nDate refunded: {date}\nPayment method: {method}\n\nRefund for: {desc}\nOriginal charge: {original} on {paid}\n\nIt may take 5–10 business days for the funds to appear on your statement.\n\nIf you have any questions, contact us at {INBOX}.\n",
            rn = p.receipt_number,
            paid = p.paid_at.format("%B %-d, %Y")
        );
        let html = stripe_html(
            "Refund from Rentico",
            &p.receipt_number,
            &[
                ("Amount refunded", &amount),
                ("Date refunded", &date),
                ("Payment method", &method),
            ],
            &[
                (&format!("Refund for {desc}"), &amount),
                ("Original charge", &original),
            ],
        );
        let mut d = self.stripe_mail(
            rng,
            p,
            format!("Your refund from Rentico #{}", p.receipt_number),
            text,
            html,
        );
        if p.code_in_stripe {
            d.mentions.push(("reservations", p.reservation_id));
        }
        d
    }

    // ---- Customers writing in ----

    fn customer_reply(&self, rng: &mut Rng, res: u32, forward: bool) -> Draft {
        const QUESTIONS: &[&str] = &[
            "Hi, can I add a child seat to this booking?",
            "Hello, is it possible to pick the car up an hour earlier?",
            "Hi there, will the car have a full tank at pick-up?",
            "Good morning, my flight might be late. Will the desk still be open?",
            "Hi, does the price include full insurance, or do I pay that at the desk?",
            "Can my partner drive too? What do you need from them?",
        ];
        const FORWARD_NOTES: &[&str] = &[
            "Hi, forwarding my confirmation below. My colleague will collect the car, please add him as a driver.",
            "Please see below. I never got a receipt for this, could you send one?",
            "Forwarding as your colleague at the desk asked me to.",
        ];
        let r = self.res(res);
        let c = self.customer_of(r);
        let conf_kind = Kind::Booked { res, copy: 0 };
        let conf = self.booked(res);
        let conf_at = self.date_of(conf_kind);
        let conf_id = self.message_id(conf_kind, conf_at, COMPANY_DOMAIN);
        let tz = country_tz(c.country);
        let display = self.noisy_full(rng, c);
        let email = self.sender_email(rng, &c.email);
        let mut signature = self.noisy_first(rng, c);
        if rng.chance(0.3) {
            if let Some(phone) = self.phone(rng, c) {
                signature = format!("{signature}\n{phone}");
            }
        }
        // A line a sender's mail program should have escaped and did not.
        let keep_from = rng
            .chance(self.noise.unescaped_from)
            .then(|| "From Tuesday on I am at a different hotel, by the way.".to_string());
        let mut text = String::new();
        let pool = if forward { FORWARD_NOTES } else { QUESTIONS };
        let opening = *rng.pick(pool);
        text.push_str(opening);
        text.push_str("\n\n");
        if let Some(line) = &keep_from {
            text.push_str(line);
            text.push_str("\n\n");
        }
        text.push_str(&format!("Thanks,\n{signature}\n\n"));
        let sent = conf_at.with_timezone(&tz).format("%a, %-d %b %Y at %H:%M");
        let subject;
        let mut extra = Vec::new();
        if forward {
            subject = format!("{} {}", rng.pick(&["Fwd:", "Fw:", "FW:"]), conf.subject);
            text.push_str(&format!(
                "---------- Forwarded message ---------\nFrom: Rentico <{INBOX}>\nDate: {sent}\nSubject: {}\nTo: {} <{}>\n\n{}",
                conf.subject,
                c.full_name(),
                c.email,
                conf.quote_text
            ));
        } else {
            subject = format!("{} {}", rng.pick(&["Re:", "RE:", "Re:"]), conf.subject);
            text.push_str(&format!("On {sent}, Rentico <{INBOX}> wrote:\n"));
            for line in conf.quote_text.lines() {
                text.push_str(if line.is_empty() { ">" } else { "> " });
                text.push_str(line);
                text.push('\n');
            }
            extra.push(format!("In-Reply-To: {conf_id}"));
            extra.push(format!("References: {conf_id}"));
        }
        let body = if keep_from.is_none() && rng.chance(0.3) {
            let html = format!(
                "<div dir=\"ltr\">{}</div>\n",
                text.lines()
                    .map(html_escape)
                    .collect::<Vec<_>>()
                    .join("<br>\n")
            );
            Body::Alt {
                text: text.clone(),
                html,
            }
        } else {
            Body::Text(text.clone())
        };
        let domain = email
            .rsplit('@')
            .next()
            .unwrap_or("mail.example")
            .to_ascii_lowercase();
        let to = if rng.chance(0.5) {
            format!("Rentico <{INBOX}>")
        } else {
            INBOX.to_string()
        };
        Draft {
            from: mailbox(rng, &display, &email),
            sender: email,
            to,
            subject,
            tz: Some(tz),
            id_domain: domain,
            extra,
            body,
            quote_text: text,
            mentions: vec![("reservations", r.id)],
            enc: Enc {
                base64: keep_from.is_none(),
                legacy_charsets: true,
            },
            keep_from,
        }
    }

    // ---- Everything else that lands in a shared inbox ----

    fn unrelated(&self, rng: &mut Rng, n: u32) -> Draft {
        // The first six cover every kind, so that even a small archive has each.
        let what = if n < 6 { n } else { rng.below(6) as u32 };
        let w = self.world;
        let lisbon = w.locations[0].tz;
        let mut d = Draft {
            sender: String::new(),
            from: String::new(),
            to: format!("Rentico <{INBOX}>"),
            subject: String::new(),
            tz: Some(lisbon),
            id_domain: String::new(),
            extra: Vec::new(),
            body: Body::Text(String::new()),
            quote_text: String::new(),
            mentions: Vec::new(),
            keep_from: None,
            enc: Enc::ANY,
        };
        let set_from = |d: &mut Draft, rng: &mut Rng, name: &str, email: &str| {
            d.sender = email.to_string();
            d.from = mailbox(rng, name, email);
            d.id_domain = email
                .rsplit('@')
                .next()
                .unwrap_or("mail.example")
                .to_string();
        };
        match what {
            0 => {
                set_from(
                    &mut d,
                    rng,
                    "Fleet Parts Lda",
                    "invoices@fleetparts.example",
                );
                let number = format!("FP-2026-{:04}", rng.range(100, 9999));
                let amount = money(rng.range(20_000, 900_000), "EUR", 2);
                d.subject = format!("Invoice {number}");
                let text = format!(
                    "Dear Rentico team,\n\nPlease find attached invoice {number} for brake pads, wiper blades and tyres delivered to the Lisbon Airport workshop, total {amount}.\n\nPayment is due within 30 days.\n\nKind regards,\nAna Sousa\nFleet Parts Lda\n"
                );
                let pdf = format!(
                    "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% Invoice {number}, {amount}\ntrailer << /Root 1 0 R >>\n%%EOF\n"
                )
                .into_bytes();
                d.body = Body::Mixed {
                    text,
                    file_name: format!("{number}.pdf"),
                    data: pdf,
                };
            }
            1 => {
                set_from(
                    &mut d,
                    rng,
                    "Rental Insider",
                    "newsletter@rental-insider.example",
                );
                d.subject = (*rng.pick(&[
                    "This week: EV charging at airports, summer demand and more",
                    "5 ways desks cut waiting times at pick-up",
                    "Fleet prices are falling. Is now the time to buy?",
                ]))
                .to_string();
                d.tz = Some(chrono_tz::America::New_York);
                d.extra
                    .push("List-Unsubscribe: <https://rental-insider.example/unsubscribe>".into());
                d.extra.push("Precedence: bulk".into());
                let text = format!(
                    "{}\n\nRead the full stories on our website: https://rental-insider.example/latest\n\nYou receive this newsletter because {INBOX} subscribed to it.\n",
                    d.subject
                );
                let html = format!(
                    "<html><head><meta charset=\"{CHARSET_TOKEN}\"></head><body>\n<h1>{}</h1>\n<p>Read the full stories on <a href=\"https://rental-insider.example/latest\">our website</a>.</p>\n<p style=\"font-size:small\">You receive this newsletter because {INBOX} subscribed to it. <a href=\"https://rental-insider.example/unsubscribe\">Unsubscribe</a></p>\n</body></html>\n",
                    html_escape(&d.subject)
                );
                d.body = if rng.chance(0.5) {
                    Body::Html(html)
                } else {
                    Body::Alt { text, html }
                };
            }
            2 => {
                set_from(
                    &mut d,
                    rng,
                    "Prize Department",
                    "claims@winner-notice.example",
                );
                d.subject = "🎉 Congratulations! You have been selected".into();
                d.to = "undisclosed-recipients:;".into();
                d.tz = Some(chrono_tz::Asia::Tokyo);
                d.body = Body::Text(format!(
                    "Dear winner,\n\nYour address was selected to receive a brand new car worth €{},000.\nTo claim it, reply with your full name, address and bank details within 24 hours.\n\nBest regards,\nThe Prize Department\n",
                    rng.range(20, 90)
                ));
            }
            3 => {
                set_from(
                    &mut d,
                    rng,
                    "Seguros Atlântico",
                    "apolices@seguros-atlantico.example",
                );
                let policy = rng.range(100_000, 999_999);
                d.subject = format!("Aviso de renovação da apólice de frota n.º {policy}");
                d.body = Body::Text(format!(
                    "Exmos. Senhores,\n\nInformamos que a apólice de frota n.º {policy} será renovada automaticamente no próximo mês.\nO prémio anual é de {} e inclui assistência em viagem.\n\nCom os melhores cumprimentos,\nSeguros Atlântico, S.A.\n",
                    money(rng.range(1_000_000, 9_000_000), "EUR", 2)
                ));
            }
            4 => {
                set_from(
                    &mut d,
                    rng,
                    "Marta Ferreira",
                    "marta.ferreira@rentico.example",
                );
                d.subject = "Late returns: new key box procedure".into();
                let mut text = String::from(
                    "Hi all,\n\nFrom here on, cars returned after 22:00 go to the key box next to the\nstaff entrance. Please empty the box first thing every morning.\n\n>From the old manual: \"keys are handed to security\". That no longer applies.\n\n",
                );
                // At high noise the first memo always carries the defect, so that every high-noise
                // archive has one.
                if self.noise.unescaped_from > 0.0
                    && (n == 4 || rng.chance(self.noise.unescaped_from))
                {
                    let line = "From the Porto desk: the same applies there.".to_string();
                    text.push_str(&line);
                    text.push_str("\n\n");
                    d.keep_from = Some(line);
                }
                text.push_str("Thanks,\nMarta\n");
                d.body = Body::Text(text);
                // Mail programs that leave "From " alone in a body send it as plain text.
                d.enc.base64 = false;
            }
            _ => {
                set_from(
                    &mut d,
                    rng,
                    "João Pereira",
                    "joao.pereira@fleetparts.example",
                );
                d.subject = "Automatic reply: Parts order for Porto Airport".into();
                d.extra.push("Auto-Submitted: auto-replied".into());
                d.extra.push("X-Auto-Response-Suppress: All".into());
                let back = (w.restore_point + Duration::days(rng.range(3, 20))).format("%-d %B");
                d.body = Body::Text(format!(
                    "I am out of the office until {back} with limited access to email.\nFor urgent matters please write to encomendas@fleetparts.example.\n\nJoão Pereira\n"
                ));
            }
        }
        d
    }
}

/// A message before it is encoded.
struct Draft {
    /// The envelope sender.
    sender: String,
    /// Header values, already encoded.
    from: String,
    to: String,
    /// Not yet encoded.
    subject: String,
    /// The zone of the sender's clock; `None` for a service that writes +0000.
    tz: Option<Tz>,
    id_domain: String,
    extra: Vec<String>,
    body: Body,
    /// The text a reply quotes.
    quote_text: String,
    mentions: Vec<(&'static str, i64)>,
    keep_from: Option<String>,
    enc: Enc,
}

/// What a part's encoding may be.
#[derive(Debug, Clone, Copy)]
struct Enc {
    base64: bool,
    /// ISO-8859-1, Windows-1252 and US-ASCII besides UTF-8; services like Stripe only send UTF-8.
    legacy_charsets: bool,
}

impl Enc {
    const ANY: Enc = Enc {
        base64: true,
        legacy_charsets: true,
    };
}

enum Body {
    Text(String),
    Html(String),
    Alt {
        text: String,
        html: String,
    },
    Mixed {
        text: String,
        file_name: String,
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Text,
    Alternative,
    Html,
}

/// A templated mail, rendered to text and to HTML from the same parts.
struct Letter {
    title: String,
    greeting: String,
    before: Vec<String>,
    rows: Vec<(String, String)>,
    after: Vec<String>,
    signoff: String,
    /// The older template: capital labels.
    caps: bool,
    time_style: u64,
    money_style: u64,
    layout: Layout,
    json_ld: Option<String>,
    json_in_head: bool,
}

impl Letter {
    fn label(&self, plain: &str, upper: &str) -> String {
        if self.caps { upper } else { plain }.to_string()
    }

    fn text(&self) -> String {
        let mut s = format!("{}\n\n", self.greeting);
        for p in &self.before {
            s.push_str(&wrap(p, 72));
            s.push_str("\n\n");
        }
        if !self.rows.is_empty() {
            for (label, value) in &self.rows {
                let label = if self.caps {
                    label.clone()
                } else {
                    format!("{label}:")
                };
                for (i, line) in value.lines().enumerate() {
                    let shown = if i == 0 { label.as_str() } else { "" };
                    s.push_str(&format!("{shown:<15} {line}\n"));
                }
            }
            s.push('\n');
        }
        for p in &self.after {
            s.push_str(&wrap(p, 72));
            s.push_str("\n\n");
        }
        s.push_str(&self.signoff);
        s.push('\n');
        s
    }

    fn html(&self) -> String {
        let script = self
            .json_ld
            .as_ref()
            .map(|j| format!("<script type=\"application/ld+json\">\n{j}\n</script>\n"))
            .unwrap_or_default();
        let mut h = String::from("<!DOCTYPE html>\n<html>\n<head>\n");
        h.push_str(&format!(
            "<meta http-equiv=\"Content-Type\" content=\"text/html; charset={CHARSET_TOKEN}\">\n"
        ));
        h.push_str(&format!("<title>{}</title>\n", html_escape(&self.title)));
        if self.json_in_head {
            h.push_str(&script);
        }
        h.push_str("</head>\n<body style=\"font-family: Helvetica, Arial, sans-serif; color: #222222;\">\n");
        if !self.json_in_head {
            h.push_str(&script);
        }
        h.push_str(&format!("<p>{}</p>\n", html_escape(&self.greeting)));
        for p in &self.before {
            h.push_str(&format!("<p>{}</p>\n", html_escape(p)));
        }
        if !self.rows.is_empty() {
            h.push_str("<table cellpadding=\"4\" style=\"border-collapse: collapse;\">\n");
            for (label, value) in &self.rows {
                let value = value
                    .lines()
                    .map(html_escape)
                    .collect::<Vec<_>>()
                    .join("<br>");
                h.push_str(&format!(
                    "<tr><td style=\"color: #6b7280;\">{}</td><td><strong>{value}</strong></td></tr>\n",
                    html_escape(label)
                ));
            }
            h.push_str("</table>\n");
        }
        for p in &self.after {
            h.push_str(&format!("<p>{}</p>\n", html_escape(p)));
        }
        let signoff = self
            .signoff
            .lines()
            .map(html_escape)
            .collect::<Vec<_>>()
            .join("<br>\n");
        h.push_str(&format!("<p>{signoff}</p>\n</body>\n</html>\n"));
        h
    }
}

fn stripe_html(
    title: &str,
    receipt: &str,
    facts: &[(&str, &str)],
    summary: &[(&str, &str)],
) -> String {
    let mut h = format!(
        "<!DOCTYPE html>\n<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset={CHARSET_TOKEN}\"><title>{t}</title></head>\n<body style=\"background-color: #f6f9fc;\">\n<h1 style=\"font-size: 24px;\">{t}</h1>\n<p style=\"color: #8898aa;\">Receipt #{receipt}</p>\n<table>\n",
        t = html_escape(title)
    );
    for (k, v) in facts {
        h.push_str(&format!("<tr><td style=\"color: #8898aa; text-transform: uppercase;\">{}</td><td>{}</td></tr>\n", html_escape(k), html_escape(v)));
    }
    h.push_str("</table>\n<h2 style=\"font-size: 16px;\">Summary</h2>\n<table>\n");
    for (k, v) in summary {
        h.push_str(&format!(
            "<tr><td>{}</td><td align=\"right\">{}</td></tr>\n",
            html_escape(k),
            html_escape(v)
        ));
    }
    h.push_str(&format!(
        "</table>\n<p>If you have any questions, contact us at <a href=\"mailto:{INBOX}\">{INBOX}</a>.</p>\n</body></html>\n"
    ));
    h
}

// ---- Encoding ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Ascii,
    Latin1,
    Cp1252,
    Utf8,
}

/// Windows-1252 where it differs from ISO-8859-1: 0x80-0x9F hold printable characters.
const CP1252_HIGH: &[(char, u8)] = &[
    ('€', 0x80),
    ('‚', 0x82),
    ('ƒ', 0x83),
    ('„', 0x84),
    ('…', 0x85),
    ('†', 0x86),
    ('‡', 0x87),
    ('ˆ', 0x88),
    ('‰', 0x89),
    ('Š', 0x8A),
    ('‹', 0x8B),
    ('Œ', 0x8C),
    ('Ž', 0x8E),
    ('‘', 0x91),
    ('’', 0x92),
    ('“', 0x93),
    ('”', 0x94),
    ('•', 0x95),
    ('–', 0x96),
    ('—', 0x97),
    ('˜', 0x98),
    ('™', 0x99),
    ('š', 0x9A),
    ('›', 0x9B),
    ('œ', 0x9C),
    ('ž', 0x9E),
    ('Ÿ', 0x9F),
];

impl Charset {
    fn label(self, upper: bool) -> &'static str {
        match (self, upper) {
            (Charset::Ascii, true) => "US-ASCII",
            (Charset::Ascii, false) => "us-ascii",
            (Charset::Latin1, true) => "ISO-8859-1",
            (Charset::Latin1, false) => "iso-8859-1",
            (Charset::Cp1252, true) => "Windows-1252",
            (Charset::Cp1252, false) => "windows-1252",
            (Charset::Utf8, true) => "UTF-8",
            (Charset::Utf8, false) => "utf-8",
        }
    }

    /// The text in this charset, or `None` when a character has no place in it.
    fn encode(self, s: &str) -> Option<Vec<u8>> {
        match self {
            Charset::Utf8 => Some(s.as_bytes().to_vec()),
            Charset::Ascii => s.is_ascii().then(|| s.as_bytes().to_vec()),
            Charset::Latin1 => s
                .chars()
                .map(|c| {
                    let u = c as u32;
                    (u < 0x80 || (0xA0..=0xFF).contains(&u)).then_some(u as u8)
                })
                .collect(),
            Charset::Cp1252 => s
                .chars()
                .map(|c| {
                    let u = c as u32;
                    if u < 0x80 || (0xA0..=0xFF).contains(&u) {
                        Some(u as u8)
                    } else {
                        CP1252_HIGH.iter().find(|(ch, _)| *ch == c).map(|(_, b)| *b)
                    }
                })
                .collect(),
        }
    }
}

/// Mostly UTF-8, as today's mail is, with the legacy charsets that older mail programs and
/// templates still send whenever the text fits them.
fn choose_charset(rng: &mut Rng, text: &str) -> Charset {
    let roll = rng.below(100);
    if text.is_ascii() && roll < 20 {
        Charset::Ascii
    } else if roll < 40 && Charset::Latin1.encode(text).is_some() {
        Charset::Latin1
    } else if roll < 52 && Charset::Cp1252.encode(text).is_some() {
        Charset::Cp1252
    } else {
        Charset::Utf8
    }
}

/// One leaf part: its content headers and its encoded body, without a trailing line break.
fn part(rng: &mut Rng, mime_type: &str, text: &str, enc: Enc) -> (String, Vec<u8>) {
    let cs = if enc.legacy_charsets {
        choose_charset(rng, text)
    } else {
        Charset::Utf8
    };
    let label = cs.label(rng.chance(0.5));
    let text = text.replace(CHARSET_TOKEN, label);
    let (cs, label, bytes) = match cs.encode(&text) {
        Some(b) => (cs, label, b),
        None => (Charset::Utf8, "utf-8", text.into_bytes()),
    };
    let cte = if cs == Charset::Ascii {
        if rng.chance(0.7) {
            "7bit"
        } else {
            "quoted-printable"
        }
    } else {
        match rng.below(10) {
            0..=4 => "quoted-printable",
            5..=7 if enc.base64 => "base64",
            _ => "8bit",
        }
    };
    let mut body = match cte {
        "quoted-printable" => quoted_printable(&bytes),
        "base64" => base64_lines(&bytes),
        _ => bytes,
    };
    while body.last() == Some(&b'\n') {
        body.pop();
    }
    let charset = if rng.chance(0.5) {
        format!("\"{label}\"")
    } else {
        label.to_string()
    };
    (
        format!("Content-Type: {mime_type}; charset={charset}\nContent-Transfer-Encoding: {cte}\n"),
        body,
    )
}

/// The message's content headers, its body, and where the closing boundary starts (the body's
/// length for a single part).
fn mime(rng: &mut Rng, boundary_rng: &mut Rng, body: &Body, enc: Enc) -> (String, Vec<u8>, usize) {
    let parts = match body {
        Body::Text(t) => {
            let (h, b) = part(rng, "text/plain", t, enc);
            let len = b.len();
            return (h, b, len);
        }
        Body::Html(t) => {
            let (h, b) = part(rng, "text/html", t, enc);
            let len = b.len();
            return (h, b, len);
        }
        Body::Alt { text, html } => (
            "alternative",
            vec![
                part(rng, "text/plain", text, enc),
                part(rng, "text/html", html, enc),
            ],
        ),
        Body::Mixed {
            text,
            file_name,
            data,
        } => {
            let attachment = (
                format!(
                    "Content-Type: application/pdf; name=\"{file_name}\"\nContent-Disposition: attachment; filename=\"{file_name}\"\nContent-Transfer-Encoding: base64\n"
                ),
                base64_lines(data),
            );
            (
                "mixed",
                vec![part(rng, "text/plain", text, enc), attachment],
            )
        }
    };
    let (subtype, parts) = parts;
    let boundary = match boundary_rng.below(3) {
        0 => format!(
            "000000000000{}",
            boundary_rng.string(b"0123456789abcdef", 16)
        ),
        1 => format!(
            "----=_Part_{}_{}.{}",
            boundary_rng.range(1000, 99_999),
            boundary_rng.range(100_000_000, 999_999_999),
            boundary_rng.range(1_000_000_000_000, 1_999_999_999_999)
        ),
        _ => format!("=_{}", boundary_rng.string(BASE62, 28)),
    };
    let header = if rng.chance(0.5) {
        format!("Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\n")
    } else {
        format!("Content-Type: multipart/{subtype};\n\tboundary=\"{boundary}\"\n")
    };
    let mut out = Vec::new();
    if rng.chance(0.3) {
        out.extend_from_slice(b"This is a multi-part message in MIME format.\n\n");
    }
    for (h, b) in parts {
        out.extend_from_slice(format!("--{boundary}\n{h}\n").as_bytes());
        out.extend_from_slice(&b);
        out.push(b'\n');
    }
    let cut_before = out.len();
    out.extend_from_slice(format!("--{boundary}--").as_bytes());
    (header, out, cut_before)
}

fn quoted_printable(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        let mut col = 0;
        for (j, &b) in line.iter().enumerate() {
            let last = j + 1 == line.len();
            let literal =
                ((b == b' ' || b == b'\t') && !last) || ((33..=126).contains(&b) && b != b'=');
            let width = if literal { 1 } else { 3 };
            // 76 characters at most, counting the "=" of a soft break.
            if col + width > 75 {
                out.extend_from_slice(b"=\n");
                col = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(format!("={b:02X}").as_bytes());
            }
            col += width;
        }
    }
    out
}

fn base64_lines(bytes: &[u8]) -> Vec<u8> {
    let encoded = BASE64.encode(bytes);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 76 + 1);
    for (i, chunk) in encoded.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(chunk);
    }
    out
}

/// A header value: as is when ASCII, else RFC 2047 encoded words, folded onto continuation lines.
fn header_text(rng: &mut Rng, s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let roll = rng.below(10);
    match Charset::Latin1.encode(s) {
        Some(bytes) if roll < 4 => {
            let units: Vec<Vec<u8>> = bytes.into_iter().map(|b| vec![b]).collect();
            q_words(
                if rng.chance(0.5) {
                    "ISO-8859-1"
                } else {
                    "iso-8859-1"
                },
                &units,
            )
        }
        _ if roll < 6 => {
            let units: Vec<Vec<u8>> = s.chars().map(|c| c.to_string().into_bytes()).collect();
            q_words("UTF-8", &units)
        }
        _ => b_words(if rng.chance(0.7) { "UTF-8" } else { "utf-8" }, s),
    }
}

/// Q encoding; a unit's bytes (one character) never straddle two words.
fn q_words(charset: &str, units: &[Vec<u8>]) -> String {
    let room = 75 - (charset.len() + 7);
    let mut words = Vec::new();
    let mut cur = String::new();
    for unit in units {
        let mut enc = String::new();
        for &b in unit {
            match b {
                b' ' => enc.push('_'),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                    enc.push(char::from(b))
                }
                _ => enc.push_str(&format!("={b:02X}")),
            }
        }
        if cur.len() + enc.len() > room {
            words.push(std::mem::take(&mut cur));
        }
        cur.push_str(&enc);
    }
    words.push(cur);
    words
        .iter()
        .map(|w| format!("=?{charset}?Q?{w}?="))
        .collect::<Vec<_>>()
        .join("\n ")
}

/// B encoding of UTF-8, split between characters.
fn b_words(charset: &str, s: &str) -> String {
    let mut words = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if cur.len() + c.len_utf8() > 39 {
            words.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    words.push(cur);
    words
        .iter()
        .map(|w| format!("=?{charset}?B?{}?=", BASE64.encode(w)))
        .collect::<Vec<_>>()
        .join("\n ")
}

fn mailbox(rng: &mut Rng, name: &str, email: &str) -> String {
    if !name.is_ascii() {
        return format!("{} <{email}>", header_text(rng, name));
    }
    let atom = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c));
    if atom && !rng.chance(0.3) {
        format!("{name} <{email}>")
    } else {
        format!(
            "\"{}\" <{email}>",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        )
    }
}

fn rentico_from(rng: &mut Rng) -> String {
    (*rng.pick(&[
        "Rentico <bookings@rentico.example>",
        "\"Rentico Bookings\" <bookings@rentico.example>",
        "Rentico Reservations <bookings@rentico.example>",
    ]))
    .to_string()
}

fn date_header(rng: &mut Rng, at: DateTime<Utc>, tz: Option<Tz>) -> String {
    match tz {
        None => at.format("%a, %d %b %Y %H:%M:%S +0000 (UTC)").to_string(),
        Some(_) if rng.chance(0.06) => at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        Some(tz) => {
            let local = at.with_timezone(&tz);
            if rng.chance(0.5) {
                local.format("%a, %d %b %Y %H:%M:%S %z").to_string()
            } else {
                local.format("%a, %-d %b %Y %H:%M:%S %z").to_string()
            }
        }
    }
}

fn country_tz(country: &str) -> Tz {
    match country {
        "PT" => chrono_tz::Europe::Lisbon,
        "DE" => chrono_tz::Europe::Berlin,
        "GB" => chrono_tz::Europe::London,
        "US" => chrono_tz::America::New_York,
        "JP" => chrono_tz::Asia::Tokyo,
        _ => chrono_tz::UTC,
    }
}

fn local_time(t: DateTime<Utc>, tz: Tz, style: u64) -> String {
    let l = t.with_timezone(&tz);
    match style % 4 {
        0 => l.format("%a %d %b %Y, %H:%M %Z").to_string(),
        1 => l.format("%d/%m/%Y %H:%M (UTC%:z)").to_string(),
        2 => l.format("%Y-%m-%d %H:%M %:z").to_string(),
        _ => l.format("%B %-d, %Y at %-I:%M %p %Z").to_string(),
    }
}

fn iso_local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn decimal(minor: i64, currency: &str) -> String {
    let per = names::minor_per_major(currency);
    if per == 1 {
        minor.to_string()
    } else {
        format!("{}.{:02}", minor / per, (minor % per).abs())
    }
}

fn grouped(n: i64, sep: char) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// An amount as a template shows it: "EUR 192.00", "€1,192.00", "192,00 €", "¥12,300".
fn money(minor: i64, currency: &str, style: u64) -> String {
    let per = names::minor_per_major(currency);
    let (major, frac) = (minor / per, minor % per);
    let symbol = match currency {
        "EUR" => "€",
        "GBP" => "£",
        "USD" => "$",
        "JPY" => "¥",
        _ => "",
    };
    match style % 3 {
        0 => format!("{currency} {}", decimal(minor, currency)),
        1 if !symbol.is_empty() => {
            if per == 1 {
                format!("{symbol}{}", grouped(major, ','))
            } else {
                format!("{symbol}{}.{frac:02}", grouped(major, ','))
            }
        }
        2 if currency == "EUR" => format!("{},{frac:02} €", grouped(major, '.')),
        _ => format!("{} {currency}", decimal(minor, currency)),
    }
}

fn card_brand(brand: &str) -> &str {
    match brand {
        "visa" => "Visa",
        "mastercard" => "Mastercard",
        "amex" => "American Express",
        other => other,
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut col = 0;
    for word in text.split(' ') {
        let len = word.chars().count();
        if col > 0 && col + 1 + len > width {
            out.push('\n');
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += len;
    }
    out
}

/// A rendered message.
struct Msg {
    sender: String,
    at: DateTime<Utc>,
    message_id: String,
    /// Header lines and the blank line that ends them.
    head: String,
    /// Without a trailing line break.
    body: Vec<u8>,
    /// A cut before this offset of the body loses the closing boundary too.
    cut_before: usize,
    /// A body line that starts with "From " and is written unescaped, the mbox defect.
    keep_from: Option<String>,
    mentions: Vec<(&'static str, i64)>,
}

/// Writes one message in mboxrd form: the envelope line, the message with every line matching
/// `^>*From ` given one more '>', and the blank line that separates it from the next.
fn emit(out: &mut impl Write, msg: &Msg, cut: Option<usize>) -> io::Result<()> {
    writeln!(
        out,
        "From {} {}",
        msg.sender,
        msg.at.format("%a %b %e %H:%M:%S %Y")
    )?;
    write_escaped(out, msg.head.as_bytes(), None)?;
    match cut {
        Some(cut) => write_escaped(out, &msg.body[..cut], msg.keep_from.as_deref()),
        None => {
            write_escaped(out, &msg.body, msg.keep_from.as_deref())?;
            out.write_all(b"\n\n")
        }
    }
}

fn write_escaped(
    out: &mut impl Write,
    bytes: &[u8],
    mut keep_from: Option<&str>,
) -> io::Result<()> {
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let unquoted = &content[content.iter().take_while(|b| **b == b'>').count()..];
        if unquoted.starts_with(b"From ") {
            if keep_from.is_some_and(|k| k.as_bytes() == content) {
                keep_from = None;
            } else {
                out.write_all(b">")?;
            }
        }
        out.write_all(line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::noise::NoiseLevel;
    use crate::simulate::world;
    use crate::simulate::Mention;
    use chrono::NaiveDateTime;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::OnceLock;

    const SEED: u64 = 11;
    const GAP_RESERVATIONS: u64 = 400;

    fn world(level: NoiseLevel) -> &'static World {
        static MEDIUM: OnceLock<World> = OnceLock::new();
        static HIGH: OnceLock<World> = OnceLock::new();
        let cell = if level == NoiseLevel::High {
            &HIGH
        } else {
            &MEDIUM
        };
        cell.get_or_init(|| {
            world::generate(&world::Params {
                seed: SEED,
                noise: Noise::new(level),
                gap_reservations: GAP_RESERVATIONS,
                gap_days: 30,
                incident_at: world::default_incident_at(),
            })
        })
    }

    struct Out {
        bytes: Vec<u8>,
        mentions: Vec<Mention>,
        written: Written,
    }

    fn run(level: NoiseLevel, seed: u64) -> Out {
        let noise = Noise::new(level);
        let ctx = Ctx {
            world: world(level),
            noise: &noise,
            seed,
        };
        let dir = tempfile::TempDir::new().expect("temp dir");
        let mail_dir = dir.path().join("evidence").join("mail");
        let mut manifest = Manifest::default();
        let written = write(&ctx, &mail_dir, &mut manifest).expect("mbox written");
        let bytes = std::fs::read(mail_dir.join(FILE_NAME)).expect("mbox exists");
        Out {
            bytes,
            mentions: manifest.into_sorted(),
            written,
        }
    }

    fn medium() -> &'static Out {
        static OUT: OnceLock<Out> = OnceLock::new();
        OUT.get_or_init(|| run(NoiseLevel::Medium, SEED))
    }

    fn high() -> &'static Out {
        static OUT: OnceLock<Out> = OnceLock::new();
        OUT.get_or_init(|| run(NoiseLevel::High, SEED))
    }

    fn plan_of(level: NoiseLevel) -> (Plan, u64) {
        let noise = Noise::new(level);
        let ctx = Ctx {
            world: world(level),
            noise: &noise,
            seed: SEED,
        };
        let (mailer, mut rng) = Mailer::new(&ctx);
        let plan = mailer.plan(&mut rng);
        (plan, mailer.salt)
    }

    // ---- A small, independent mbox and MIME reader ----

    /// A real envelope line: "From " + address + asctime date, not a body line that happens to
    /// start with "From ".
    fn is_envelope(line: &[u8]) -> bool {
        let Ok(line) = std::str::from_utf8(line) else {
            return false;
        };
        let Some(rest) = line.trim_end_matches('\n').strip_prefix("From ") else {
            return false;
        };
        let Some((addr, date)) = rest.split_once(' ') else {
            return false;
        };
        addr.contains('@') && NaiveDateTime::parse_from_str(date, "%a %b %e %H:%M:%S %Y").is_ok()
    }

    /// The messages of an mboxrd archive, envelope lines dropped and quoting undone.
    fn messages(mbox: &[u8]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut prev_blank = true;
        for line in mbox.split_inclusive(|b| *b == b'\n') {
            if prev_blank && is_envelope(line) {
                if let Some(last) = out.last_mut() {
                    // The blank line before an envelope separates, it is not content.
                    if last.ends_with(b"\n\n") {
                        last.pop();
                    }
                }
                out.push(Vec::new());
                prev_blank = false;
                continue;
            }
            prev_blank = line == b"\n";
            let Some(cur) = out.last_mut() else { continue };
            let depth = line.iter().take_while(|b| **b == b'>').count();
            if depth > 0 && line[depth..].starts_with(b"From ") {
                cur.extend_from_slice(&line[1..]);
            } else {
                cur.extend_from_slice(line);
            }
        }
        out
    }

    struct Part {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Part {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        fn subject(&self) -> String {
            decode_words(self.header("Subject").unwrap_or(""))
        }
    }

    fn parse(raw: &[u8]) -> Part {
        let split = raw
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(raw.len(), |i| i + 1);
        let head = std::str::from_utf8(&raw[..split]).expect("headers are ASCII");
        assert!(head.is_ascii(), "non-ASCII header: {head}");
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("a continuation follows a header");
                last.1.push_str(line);
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.to_string(), v.trim().to_string()));
            }
        }
        let body = raw.get(split + 1..).unwrap_or_default().to_vec();
        Part { headers, body }
    }

    fn param(value: &str, name: &str) -> Option<String> {
        value.split(';').skip(1).find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().trim_matches('"').to_string())
        })
    }

    /// (MIME type, decoded text) of every leaf part.
    fn leaves(part: &Part) -> Vec<(String, String)> {
        let ctype = part
            .header("Content-Type")
            .unwrap_or("text/plain")
            .to_string();
        let mime = ctype
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime.starts_with("multipart/") {
            let boundary = param(&ctype, "boundary").expect("a multipart has a boundary");
            let delim = format!("--{boundary}");
            let close = format!("--{boundary}--");
            let mut out = Vec::new();
            let mut cur: Option<Vec<u8>> = None;
            for line in part.body.split_inclusive(|b| *b == b'\n') {
                let l = line.strip_suffix(b"\n").unwrap_or(line);
                if l == delim.as_bytes() || l == close.as_bytes() {
                    if let Some(mut p) = cur.take() {
                        p.pop();
                        out.extend(leaves(&parse(&p)));
                    }
                    if l == close.as_bytes() {
                        return out;
                    }
                    cur = Some(Vec::new());
                } else if let Some(p) = cur.as_mut() {
                    p.extend_from_slice(line);
                }
            }
            panic!("multipart without its closing boundary");
        }
        let cte = part
            .header("Content-Transfer-Encoding")
            .unwrap_or("7bit")
            .to_ascii_lowercase();
        let bytes = match cte.as_str() {
            "base64" => {
                let clean: Vec<u8> = part
                    .body
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                BASE64.decode(clean).expect("valid base64")
            }
            "quoted-printable" => qp_decode(&part.body),
            _ => part.body.clone(),
        };
        let text = if mime.starts_with("text/") {
            decode_charset(
                &param(&ctype, "charset").unwrap_or("us-ascii".into()),
                &bytes,
            )
        } else {
            String::new()
        };
        vec![(mime, text)]
    }

    fn hex(pair: &[u8]) -> u8 {
        u8::from_str_radix(std::str::from_utf8(pair).expect("hex digits"), 16).expect("hex digits")
    }

    fn qp_decode(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
        for (n, line) in lines.iter().enumerate() {
            let (line, soft) = match line.strip_suffix(b"=") {
                Some(l) => (l, true),
                None => (*line, false),
            };
            let mut i = 0;
            while i < line.len() {
                if line[i] == b'=' {
                    out.push(hex(&line[i + 1..i + 3]));
                    i += 3;
                } else {
                    out.push(line[i]);
                    i += 1;
                }
            }
            if !soft && n + 1 < lines.len() {
                out.push(b'\n');
            }
        }
        out
    }

    fn decode_charset(charset: &str, bytes: &[u8]) -> String {
        match charset.to_ascii_lowercase().as_str() {
            "utf-8" => String::from_utf8(bytes.to_vec()).expect("valid UTF-8"),
            "us-ascii" => {
                assert!(bytes.is_ascii(), "8-bit bytes labelled us-ascii");
                String::from_utf8(bytes.to_vec()).expect("ASCII")
            }
            "iso-8859-1" => bytes.iter().map(|b| char::from(*b)).collect(),
            "windows-1252" => bytes
                .iter()
                .map(|&b| match CP1252_HIGH.iter().find(|(_, x)| *x == b) {
                    Some((c, _)) => *c,
                    None => {
                        assert!(
                            !(0x80..=0x9F).contains(&b),
                            "undefined windows-1252 byte {b:#x}"
                        );
                        char::from(b)
                    }
                })
                .collect(),
            other => panic!("unexpected charset {other}"),
        }
    }

    /// RFC 2047: encoded words decoded, the white space between two of them dropped.
    fn decode_words(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        let mut after_word = false;
        while let Some(start) = rest.find("=?") {
            let before = &rest[..start];
            if !(after_word && before.trim().is_empty()) {
                out.push_str(before);
            }
            let mut it = rest[start + 2..].splitn(3, '?');
            let (charset, enc, tail) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            let end = tail.find("?=").expect("an encoded word ends with ?=");
            let text = &tail[..end];
            let bytes = if enc.eq_ignore_ascii_case("b") {
                BASE64
                    .decode(text)
                    .expect("valid base64 in an encoded word")
            } else {
                let t = text.replace('_', " ");
                let mut b = Vec::new();
                let raw = t.as_bytes();
                let mut i = 0;
                while i < raw.len() {
                    if raw[i] == b'=' {
                        b.push(hex(&raw[i + 1..i + 3]));
                        i += 3;
                    } else {
                        b.push(raw[i]);
                        i += 1;
                    }
                }
                b
            };
            out.push_str(&decode_charset(charset, &bytes));
            rest = &tail[end + 2..];
            after_word = true;
        }
        out.push_str(rest);
        out
    }

    /// Every complete message, parsed: all but the last, which is cut on purpose.
    fn complete(out: &Out) -> Vec<Part> {
        let mut all: Vec<Part> = messages(&out.bytes).iter().map(|m| parse(m)).collect();
        all.pop();
        all
    }

    // ---- The tests ----

    #[test]
    fn envelope_lines_count_the_messages_and_body_from_lines_are_quoted() {
        let out = medium();
        assert_eq!(
            out.written.files,
            vec!["evidence/mail/bookings.mbox".to_string()]
        );
        assert!(
            out.written.items > GAP_RESERVATIONS,
            "{}",
            out.written.items
        );
        // Below high noise no body line may start with "From ", so every one is an envelope.
        let from_lines = out
            .bytes
            .split(|b| *b == b'\n')
            .filter(|l| l.starts_with(b"From "))
            .count();
        assert_eq!(from_lines as u64, out.written.items);
        assert_eq!(messages(&out.bytes).len() as u64, out.written.items);
        assert!(out.bytes.windows(15).any(|w| w == b"\n>From here on,"));
        assert!(out
            .bytes
            .windows(23)
            .any(|w| w == b"\n>>From the old manual:"));
        // A reader that undoes the quoting gets the memo's own words back.
        let memo = complete(out)
            .into_iter()
            .find(|m| m.subject().starts_with("Late returns"))
            .expect("the memo is archived");
        let text = &leaves(&memo)[0].1;
        assert!(
            text.contains("\nFrom here on,") && text.contains("\n>From the old manual:"),
            "{text}"
        );
    }

    #[test]
    fn the_last_message_is_cut_before_its_end() {
        let noise = Noise::new(NoiseLevel::Medium);
        let ctx = Ctx {
            world: world(NoiseLevel::Medium),
            noise: &noise,
            seed: SEED,
        };
        let (mailer, mut rng) = Mailer::new(&ctx);
        let plan = mailer.plan(&mut rng);
        let last = plan.messages.last().expect("messages");
        let msg = mailer.render(last.kind, last.at);
        let mut full = Vec::new();
        emit(&mut full, &msg, None).unwrap();
        let bytes = &medium().bytes;
        let envelope = format!(
            "From {} {}\n",
            msg.sender,
            msg.at.format("%a %b %e %H:%M:%S %Y")
        );
        let start = bytes
            .windows(envelope.len())
            .rposition(|w| w == envelope.as_bytes())
            .expect("the last envelope");
        let tail = &bytes[start..];
        assert!(
            full.starts_with(tail),
            "the archive ends with a prefix of the last message"
        );
        assert!(
            tail.len() > envelope.len() + msg.head.len(),
            "the headers survive the cut"
        );
        assert!(
            tail.len() + 8 < full.len(),
            "cut {} of {}",
            tail.len(),
            full.len()
        );
        assert!(!bytes.ends_with(b"\n\n"));
        let parsed = parse(&messages(bytes).pop().unwrap());
        if let Some(b) = parsed
            .header("Content-Type")
            .and_then(|c| param(c, "boundary"))
        {
            assert!(!tail
                .windows(b.len() + 4)
                .any(|w| w == format!("--{b}--").as_bytes()));
        }
    }

    #[test]
    fn every_confirmation_in_the_archive_is_in_the_manifest() {
        let w = world(NoiseLevel::Medium);
        let out = medium();
        let (plan, _) = plan_of(NoiseLevel::Medium);
        let lost: BTreeSet<Kind> = plan.lost.iter().copied().collect();
        let mut subjects: BTreeMap<String, String> = BTreeMap::new();
        for m in messages(&out.bytes).iter().map(|m| parse(m)) {
            let id = m.header("Message-ID").expect("a Message-ID").to_string();
            assert!(
                subjects.insert(id, m.subject()).is_none(),
                "Message-IDs are unique"
            );
        }
        let mut checked = 0;
        let mut missing = 0;
        for (i, r) in w.reservations.iter().enumerate() {
            if !w.in_gap(r.created_at) {
                continue;
            }
            if lost.contains(&Kind::Booked {
                res: i as u32,
                copy: 0,
            }) {
                missing += 1;
                continue;
            }
            let subject = format!("Your Rentico booking {} is confirmed", r.code);
            let mention = out
                .mentions
                .iter()
                .find(|m| {
                    m.table == "reservations"
                        && m.row_id == r.id
                        && m.source == Source::Mail
                        && subjects.get(&m.locator) == Some(&subject)
                })
                .unwrap_or_else(|| panic!("no confirmation of {} in the manifest", r.code));
            assert!(out.mentions.iter().any(|m| m.table == "customers"
                && m.row_id == r.customer_id
                && m.locator == mention.locator));
            checked += 1;
        }
        assert!(
            checked >= 330 && missing >= 1,
            "checked {checked}, missing {missing}"
        );
        for m in &out.mentions {
            assert!(
                subjects.contains_key(&m.locator),
                "{} points at no message",
                m.locator
            );
        }
    }

    #[test]
    fn unrelated_mail_mentions_nothing() {
        let noise = Noise::new(NoiseLevel::Medium);
        let ctx = Ctx {
            world: world(NoiseLevel::Medium),
            noise: &noise,
            seed: SEED,
        };
        let (mailer, mut rng) = Mailer::new(&ctx);
        let plan = mailer.plan(&mut rng);
        let unrelated: BTreeSet<String> = plan
            .messages
            .iter()
            .filter(|m| matches!(m.kind, Kind::Unrelated { .. }))
            .map(|m| mailer.render(m.kind, m.at).message_id)
            .collect();
        assert!(unrelated.len() >= 30, "{}", unrelated.len());
        assert!(medium()
            .mentions
            .iter()
            .all(|m| !unrelated.contains(&m.locator)));
    }

    #[test]
    fn json_ld_blocks_parse_and_name_real_bookings() {
        let w = world(NoiseLevel::Medium);
        let codes: BTreeMap<&str, &Reservation> = w
            .reservations
            .iter()
            .map(|r| (r.code.as_str(), r))
            .collect();
        let (mut html_confirmations, mut with_json) = (0, 0);
        for m in complete(medium()) {
            let confirmation =
                m.subject().ends_with(" is confirmed") && m.subject().starts_with("Your Rentico");
            for (mime, text) in leaves(&m) {
                if mime != "text/html" {
                    continue;
                }
                html_confirmations += usize::from(confirmation);
                let Some(start) = text.find("<script type=\"application/ld+json\">") else {
                    continue;
                };
                let rest = &text[start..];
                let json = &rest[rest.find('\n').unwrap()..rest.find("</script>").unwrap()];
                let v: serde_json::Value = serde_json::from_str(json).expect("JSON-LD parses");
                assert_eq!(v["@type"], "RentalCarReservation");
                let code = v["reservationNumber"]
                    .as_str()
                    .expect("a reservation number");
                let r = codes
                    .get(code)
                    .unwrap_or_else(|| panic!("{code} is no booking"));
                assert_eq!(v["priceCurrency"], r.currency);
                for key in ["pickupTime", "dropoffTime"] {
                    DateTime::parse_from_rfc3339(v[key].as_str().unwrap())
                        .expect("ISO 8601 with offset");
                }
                if confirmation {
                    with_json += 1;
                    assert_eq!(
                        v["reservationStatus"],
                        "http://schema.org/ReservationConfirmed"
                    );
                    assert_eq!(
                        v["underName"]["name"],
                        w.customer(r.customer_id).full_name()
                    );
                }
            }
        }
        let share = f64::from(with_json) / html_confirmations as f64;
        assert!(
            (0.25..=0.55).contains(&share),
            "{with_json} of {html_confirmations}"
        );
    }

    #[test]
    fn same_seed_gives_the_same_bytes() {
        let again = run(NoiseLevel::Medium, SEED);
        assert!(again.bytes == medium().bytes, "two runs differ");
        assert_eq!(again.mentions, medium().mentions);
        let other = run(NoiseLevel::Medium, SEED + 1);
        assert!(other.bytes != medium().bytes);
    }

    #[test]
    fn encoded_names_decode_to_the_customer() {
        let w = world(NoiseLevel::Medium);
        let codes: BTreeMap<&str, &Reservation> = w
            .reservations
            .iter()
            .map(|r| (r.code.as_str(), r))
            .collect();
        let (mut b_words, mut q_words) = (0, 0);
        for m in complete(medium()) {
            let subject = m.subject();
            let Some(code) = subject
                .strip_prefix("Your Rentico booking ")
                .and_then(|s| s.strip_suffix(" is confirmed"))
            else {
                continue;
            };
            let to = m.header("To").unwrap();
            if !to.contains("=?") {
                continue;
            }
            let c = w.customer(codes[code].customer_id);
            let decoded = decode_words(to);
            assert_eq!(decoded, format!("{} <{}>", c.full_name(), c.email), "{to}");
            assert!(!c.full_name().is_ascii());
            if to.contains("?B?") || to.contains("?b?") {
                b_words += 1;
            } else {
                q_words += 1;
            }
        }
        assert!(b_words >= 3 && q_words >= 3, "B {b_words}, Q {q_words}");
    }

    #[test]
    fn encoded_words_round_trip_and_stay_short() {
        for seed in 0..60 {
            let mut rng = Rng::new(seed);
            for name in [
                "Łukasz Wójcik",
                "Tarō Satō",
                "Zoë Müller",
                "Thanks for renting with Rentico – your rental is complete",
            ] {
                let enc = header_text(&mut rng, name);
                assert!(enc.is_ascii());
                assert_eq!(decode_words(&enc), name, "{enc}");
                assert!(enc.split_whitespace().all(|w| w.len() <= 75), "{enc}");
            }
        }
    }

    #[test]
    fn every_part_decodes_and_the_encodings_are_mixed() {
        let out = medium();
        let mut ctes = BTreeSet::new();
        let mut charsets = BTreeSet::new();
        let mut zones = BTreeSet::new();
        for m in complete(out) {
            let date = m.header("Date").expect("a Date");
            zones.insert(date.split(' ').nth(5).unwrap_or("").to_string());
            chrono::DateTime::parse_from_rfc2822(date.trim_end_matches(" (UTC)"))
                .expect("an RFC 2822 date");
            assert_eq!(m.header("MIME-Version"), Some("1.0"));
            for (_, text) in leaves(&m) {
                assert!(!text.contains(CHARSET_TOKEN));
            }
            let mut stack = vec![m];
            while let Some(p) = stack.pop() {
                if let Some(c) = p.header("Content-Transfer-Encoding") {
                    ctes.insert(c.to_ascii_lowercase());
                }
                let ctype = p.header("Content-Type").unwrap_or("").to_string();
                if let Some(cs) = param(&ctype, "charset") {
                    charsets.insert(cs.to_ascii_lowercase());
                }
                if let Some(b) = param(&ctype, "boundary") {
                    let delim = format!("\n--{b}\n");
                    let body = String::from_utf8_lossy(&p.body).into_owned();
                    for chunk in body.split(&delim).skip(1) {
                        let chunk = chunk.split(&format!("\n--{b}--")).next().unwrap();
                        stack.push(parse(chunk.as_bytes()));
                    }
                }
            }
        }
        for cte in ["7bit", "8bit", "quoted-printable", "base64"] {
            assert!(ctes.contains(cte), "{cte} missing from {ctes:?}");
        }
        for cs in ["utf-8", "iso-8859-1", "windows-1252", "us-ascii"] {
            assert!(charsets.contains(cs), "{cs} missing from {charsets:?}");
        }
        for zone in ["+0100", "+0200", "-0400", "+0900", "GMT", "+0000"] {
            assert!(zones.contains(zone), "{zone} missing from {zones:?}");
        }
        assert!(out.bytes.split(|b| *b == b'\n').all(|l| l.len() <= 998));
    }

    #[test]
    fn replies_quote_their_confirmation_and_resends_repeat_it() {
        let all = complete(high());
        let by_id: BTreeMap<&str, &Part> = all
            .iter()
            .map(|m| (m.header("Message-ID").unwrap(), m))
            .collect();
        let (mut replies, mut forwards, mut resends) = (0, 0, 0);
        for m in &all {
            let subject = m.subject();
            let from = m.header("From").unwrap();
            if let Some(parent) = m.header("In-Reply-To") {
                let original = by_id
                    .get(parent)
                    .expect("a reply answers an archived message");
                assert_eq!(subject.split_once(' ').unwrap().1, original.subject());
                assert!(!from.contains(INBOX), "{from}");
                let text = &leaves(m)[0].1;
                assert!(text.contains("\n> ") && text.contains(" wrote:\n"));
                replies += 1;
            }
            if subject.starts_with("Fwd:")
                || subject.starts_with("Fw:")
                || subject.starts_with("FW:")
            {
                assert!(!from.contains(INBOX));
                assert!(leaves(m)[0]
                    .1
                    .contains("---------- Forwarded message ---------"));
                forwards += 1;
            }
        }
        let mut confirmations: BTreeMap<String, Vec<&Part>> = BTreeMap::new();
        for m in &all {
            if m.subject().starts_with("Your Rentico booking ") {
                confirmations.entry(m.subject()).or_default().push(m);
            }
        }
        for copies in confirmations.values().filter(|c| c.len() > 1) {
            assert_ne!(
                copies[0].header("Message-ID"),
                copies[1].header("Message-ID")
            );
            assert_eq!(leaves(copies[0]), leaves(copies[1]));
            resends += 1;
        }
        let (plan, _) = plan_of(NoiseLevel::High);
        let planned = plan
            .messages
            .iter()
            .filter(|m| matches!(m.kind, Kind::Booked { copy: 1, .. }))
            .count();
        assert!(
            planned >= 1 && resends == planned,
            "{resends} resent of {planned}"
        );
        assert!(replies >= 3 && forwards >= 3, "{replies} {forwards}");
    }

    #[test]
    fn high_noise_leaves_a_from_line_unescaped() {
        let out = high();
        let envelopes = out
            .bytes
            .split_inclusive(|b| *b == b'\n')
            .filter(|l| is_envelope(l))
            .count();
        assert_eq!(envelopes as u64, out.written.items);
        assert!(out
            .bytes
            .windows(22)
            .any(|w| w == b"\n\nFrom the Porto desk:"));
        // The medium archive has no such line.
        assert!(!medium()
            .bytes
            .windows(22)
            .any(|w| w == b"\n\nFrom the Porto desk:"));
    }

    #[test]
    fn the_payment_index_agrees_with_the_world() {
        let w = world(NoiseLevel::Medium);
        let noise = Noise::new(NoiseLevel::Medium);
        let ctx = Ctx {
            world: w,
            noise: &noise,
            seed: SEED,
        };
        let (mailer, _) = Mailer::new(&ctx);
        for (i, expected) in w.payments_by_reservation().iter().enumerate() {
            let got: Vec<i64> = mailer.payments_of(i as u32).map(|p| p.id).collect();
            let want: Vec<i64> = expected.iter().map(|&k| w.payments[k].id).collect();
            assert_eq!(got, want, "reservation {}", i + 1);
        }
    }

    #[test]
    fn quoted_printable_round_trips() {
        let text = "caf\u{e9} = 1  \nFrom here\n".to_string() + &"x".repeat(200) + " \n";
        let bytes = Charset::Latin1.encode(&text).unwrap();
        let enc = quoted_printable(&bytes);
        assert!(enc.split(|b| *b == b'\n').all(|l| l.len() <= 76));
        assert!(!enc.split(|b| *b == b'\n').any(|l| l.ends_with(b" ")));
        assert_eq!(qp_decode(&enc), bytes);
    }

    #[test]
    fn money_has_no_decimals_in_yen() {
        assert_eq!(money(12_300, "JPY", 1), "¥12,300");
        assert_eq!(money(12_300, "JPY", 0), "JPY 12300");
        assert_eq!(money(123_456, "EUR", 1), "€1,234.56");
        assert_eq!(money(123_456, "EUR", 2), "1.234,56 €");
        assert_eq!(decimal(5, "GBP"), "0.05");
    }

    #[test]
    fn mboxrd_quotes_every_from_line_once_more() {
        let mut out = Vec::new();
        write_escaped(
            &mut out,
            b"From a\n>From b\n>>From c\nFrom: d\nx From e",
            None,
        )
        .unwrap();
        assert_eq!(out, b">From a\n>>From b\n>>>From c\nFrom: d\nx From e");
    }
}
