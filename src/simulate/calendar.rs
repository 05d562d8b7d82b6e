//! The rental desks' shared Google calendars, exported as iCalendar files: one calendar per
//! location, with an event per pickup.
//!
//! Only events updated since the restore point are exported (what Google's `updatedMin` gives):
//! events that were created, modified or cancelled in the gap. Older events tell nothing that the
//! restored backup does not already hold. Each event shows the reservation as it stood at the
//! export, with a SEQUENCE that counts the edits, so that a reader holding two exports of one
//! calendar can tell which version of an event is newer.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::manifest::Source;
use super::names::UNRELATED_EVENTS;
use super::noise::{Noise, NoiseLevel};
use super::rng::Rng;
use super::vary;
use super::world::{Change, Customer, Location, ResVersion, Reservation, Status, World};
use super::{write_file, Ctx, Manifest, Result, Written};

const PRODID: &str = "-//Google Inc//Google Calendar 70.9054//EN";
/// Google's event ids are base32hex, lowercase.
const UID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
const PICKUP_MINUTES: i64 = 30;

pub fn write(ctx: &Ctx, dir: &Path, manifest: &mut Manifest) -> Result<Written> {
    let world = ctx.world;
    let mut rng = Rng::fork(ctx.seed, "calendar");
    let mut uids = BTreeSet::new();
    let pickups = plan_pickups(world, ctx.noise, &mut rng, &mut uids);
    let unrelated = plan_unrelated(world, &mut rng, &mut uids);
    let shown = shown_prefix(dir);
    let mut written = Written::default();

    for (idx, loc) in world.locations.iter().enumerate() {
        let name = format!("{}.ics", loc.spec.code.to_lowercase());
        let export = Export {
            loc_idx: idx,
            at: world.incident_at,
            shown: join(&shown, &name),
        };
        let (text, events) = render(world, &export, &pickups, &unrelated, manifest);
        write_file(&dir.join(&name), text.as_bytes())?;
        written.files.push(export.shown);
        written.items += events;
    }

    // A desk that downloaded its calendar halfway through the gap, and kept the file: the same
    // events at lower SEQUENCE, some since moved or cancelled.
    if ctx.noise.level != NoiseLevel::Low {
        if let Some(idx) = busiest_location(world, &pickups) {
            let loc = &world.locations[idx];
            let at = world.restore_point + (world.incident_at - world.restore_point) / 2;
            let name = format!(
                "older/{}-{}.ics",
                loc.spec.code.to_lowercase(),
                at.with_timezone(&loc.tz).format("%Y-%m-%d")
            );
            let export = Export {
                loc_idx: idx,
                at,
                shown: join(&shown, &name),
            };
            let (text, events) = render(world, &export, &pickups, &unrelated, manifest);
            write_file(&dir.join(&name), text.as_bytes())?;
            written.files.push(export.shown);
            written.items += events;
        }
    }
    Ok(written)
}

/// One download of one location's calendar.
struct Export {
    loc_idx: usize,
    /// When it was downloaded: its DTSTAMP, and the latest change it can show.
    at: DateTime<Utc>,
    /// The file as the summary and the manifest name it.
    shown: String,
}

/// How an event writes its start and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeForm {
    /// `DTSTART;TZID=Europe/Lisbon:…`, the way Google writes events.
    Zoned,
    /// `DTSTART:…Z`, as some clients that imported the event write it.
    Utc,
    /// `DTSTART:…` without a zone, meaning the calendar's X-WR-TIMEZONE.
    Floating,
}

/// One calendar event for one reservation, with the defects the desk put into it. The defects
/// are drawn once and kept through every version, as a desk edits times and keeps the text.
struct Entry {
    uid: String,
    created: DateTime<Utc>,
    /// The second entry of a pickup entered twice: worded differently.
    duplicate: bool,
    first_name: String,
    last_name: String,
    phone: Option<String>,
    with_code: bool,
    form: TimeForm,
}

struct Pickup<'w> {
    res: &'w Reservation,
    customer: &'w Customer,
    entries: Vec<Entry>,
    /// When the reservation is cancelled, its events are deleted rather than marked cancelled.
    deleted_on_cancel: bool,
}

enum UnrelatedKind {
    Timed {
        start: DateTime<Utc>,
        minutes: i64,
    },
    AllDay {
        date: NaiveDate,
        days: i64,
    },
    Weekly {
        start: DateTime<Utc>,
        minutes: i64,
        count: u32,
        /// One occurrence moved: its index in the series, the shift, when it was moved.
        moved: Option<(u32, Duration, DateTime<Utc>)>,
    },
}

struct Unrelated {
    uid: String,
    loc_idx: usize,
    summary: &'static str,
    created: DateTime<Utc>,
    kind: UnrelatedKind,
}

/// Booking, modification and cancellation edit the event; a no-show or a completed rental is
/// never entered in the calendar.
fn edits_event(change: Change) -> bool {
    matches!(
        change,
        Change::Booked | Change::Modified | Change::Cancelled
    )
}

/// The event's content at `t`: the latest edit up to `t` and its SEQUENCE.
fn state_at(res: &Reservation, t: DateTime<Utc>) -> Option<(&ResVersion, u32)> {
    let mut state = None;
    for v in res
        .versions
        .iter()
        .filter(|v| edits_event(v.change) && v.at <= t)
    {
        state = Some((v, state.map_or(0, |(_, seq)| seq + 1)));
    }
    state
}

/// Whether an export made at `t` holds the reservation's event: it was edited in the gap.
fn exported_at(world: &World, res: &Reservation, t: DateTime<Utc>) -> bool {
    res.versions
        .iter()
        .any(|v| edits_event(v.change) && v.at <= t && world.in_gap(v.at))
}

fn plan_pickups<'w>(
    world: &'w World,
    noise: &Noise,
    rng: &mut Rng,
    uids: &mut BTreeSet<String>,
) -> Vec<Pickup<'w>> {
    let mut out = Vec::new();
    for res in &world.reservations {
        if !exported_at(world, res, world.incident_at) {
            continue;
        }
        // Drawn for every reservation alike, so that one outcome does not shift the stream of
        // the others.
        let missing = rng.chance(noise.calendar_missing);
        let deleted_on_cancel = rng.chance(noise.calendar_cancel_deleted);
        let duplicate = rng.chance(noise.calendar_duplicate);
        let duplicate_delay = Duration::minutes(rng.range(3, 240));
        if missing {
            continue;
        }
        let customer = world.customer(res.customer_id);
        let mut entries = vec![new_entry(rng, noise, customer, res.created_at, false, uids)];
        if duplicate {
            let created = res.created_at + duplicate_delay;
            entries.push(new_entry(rng, noise, customer, created, true, uids));
        }
        out.push(Pickup {
            res,
            customer,
            entries,
            deleted_on_cancel,
        });
    }
    out
}

fn new_entry(
    rng: &mut Rng,
    noise: &Noise,
    customer: &Customer,
    created: DateTime<Utc>,
    duplicate: bool,
    uids: &mut BTreeSet<String>,
) -> Entry {
    let uid = new_uid(rng, uids);
    let first_name = vary::first_name(rng, noise, customer);
    let last_name = vary::last_name(rng, noise, customer);
    let phone = vary::phone(rng, noise, customer);
    let with_code = !rng.chance(noise.missing_code_text);
    let form = if !rng.chance(noise.tz_convention) {
        TimeForm::Zoned
    } else if rng.chance(0.5) {
        TimeForm::Utc
    } else {
        TimeForm::Floating
    };
    Entry {
        uid,
        created,
        duplicate,
        first_name,
        last_name,
        phone,
        with_code,
        form,
    }
}

fn new_uid(rng: &mut Rng, uids: &mut BTreeSet<String>) -> String {
    loop {
        let uid = format!("{}@google.com", rng.string(UID_ALPHABET, 26));
        if uids.insert(uid.clone()) {
            return uid;
        }
    }
}

/// About three per location per 30 days: meetings, maintenance, inspections.
fn plan_unrelated(world: &World, rng: &mut Rng, uids: &mut BTreeSet<String>) -> Vec<Unrelated> {
    let gap_secs = (world.incident_at - world.restore_point)
        .num_seconds()
        .max(1);
    let expected = 3.0 * gap_secs as f64 / (30.0 * 86_400.0);
    let mut out = Vec::new();
    for (loc_idx, loc) in world.locations.iter().enumerate() {
        let n = expected.floor() as u64 + u64::from(rng.chance(expected.fract()));
        for _ in 0..n {
            let uid = new_uid(rng, uids);
            let summary = *rng.pick(UNRELATED_EVENTS);
            let day = world.restore_point + Duration::seconds(rng.below(gap_secs as u64) as i64);
            let slot = rng.range(16, 34);
            let mut start = local_slot(loc.tz, day, slot);
            if start < world.restore_point {
                start += Duration::days(1);
            }
            let room = (start.min(world.incident_at) - world.restore_point).num_seconds();
            let created = if room > 0 {
                world.restore_point + Duration::seconds(rng.below(room as u64) as i64)
            } else {
                world.restore_point + Duration::seconds(rng.below(gap_secs as u64) as i64)
            };
            let minutes = 30 * rng.range(1, 4);
            let kind = match summary {
                "Staff meeting" | "Training: new booking system" => {
                    let count = if summary == "Staff meeting" { 10 } else { 4 };
                    let moved = rng.chance(0.5).then(|| {
                        let index = rng.range(1, i64::from(count) - 1) as u32;
                        let shift = Duration::minutes(30 * rng.range(1, 4));
                        let after = (world.incident_at - created).num_seconds().max(1);
                        let at = created + Duration::seconds(rng.below(after as u64) as i64);
                        (index, shift, at)
                    });
                    UnrelatedKind::Weekly {
                        start,
                        minutes,
                        count,
                        moved,
                    }
                }
                "Quarterly inventory count" | "Fleet maintenance window" => UnrelatedKind::AllDay {
                    date: start.with_timezone(&loc.tz).date_naive(),
                    days: rng.range(1, 2),
                },
                _ => UnrelatedKind::Timed { start, minutes },
            };
            out.push(Unrelated {
                uid,
                loc_idx,
                summary,
                created,
                kind,
            });
        }
    }
    out
}

/// The half-hour `slot` of the local day that `day` falls on.
fn local_slot(tz: Tz, day: DateTime<Utc>, slot: i64) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt((slot / 2) as u32, ((slot % 2) * 30) as u32, 0);
    time.and_then(|time| {
        let naive = day.with_timezone(&tz).date_naive().and_time(time);
        tz.from_local_datetime(&naive).earliest()
    })
    .map_or(day, |t| t.with_timezone(&Utc))
}

fn busiest_location(world: &World, pickups: &[Pickup]) -> Option<usize> {
    let mut counts = vec![0u64; world.locations.len()];
    for p in pickups {
        let id = p.res.latest().pickup_location_id;
        if let Some(c) = world
            .locations
            .iter()
            .position(|l| l.id == id)
            .and_then(|i| counts.get_mut(i))
        {
            *c += 1;
        }
    }
    let mut best: Option<(usize, u64)> = None;
    for (i, &c) in counts.iter().enumerate() {
        if c > 0 && best.is_none_or(|(_, b)| c > b) {
            best = Some((i, c));
        }
    }
    best.map(|(i, _)| i)
}

/// The calendar file and its number of VEVENTs; records what its events mention.
fn render(
    world: &World,
    export: &Export,
    pickups: &[Pickup],
    unrelated: &[Unrelated],
    manifest: &mut Manifest,
) -> (String, u64) {
    let loc = &world.locations[export.loc_idx];
    let zoned = vtimezone(loc.spec.timezone).is_some();
    // Events in the order they were created; the index keeps ties in world order.
    let mut events: Vec<(DateTime<Utc>, usize, Vec<String>)> = Vec::new();
    for p in pickups {
        let Some((state, seq)) = state_at(p.res, export.at) else {
            continue;
        };
        if state.pickup_location_id != loc.id || !exported_at(world, p.res, export.at) {
            continue;
        }
        if state.status == Status::Cancelled && p.deleted_on_cancel {
            continue;
        }
        for e in p.entries.iter().filter(|e| e.created <= export.at) {
            let lines = pickup_lines(world, loc, zoned, export.at, p, e, state, seq);
            let locator = format!("{}#{}#SEQUENCE={seq}", export.shown, e.uid);
            manifest.mention("reservations", p.res.id, Source::Calendar, locator.clone());
            manifest.mention("customers", p.customer.id, Source::Calendar, locator);
            events.push((e.created, events.len(), lines));
        }
    }
    for u in unrelated
        .iter()
        .filter(|u| u.loc_idx == export.loc_idx && u.created <= export.at)
    {
        for lines in unrelated_lines(loc, zoned, export.at, u) {
            events.push((u.created, events.len(), lines));
        }
    }
    events.sort_by_key(|(created, i, _)| (*created, *i));

    let mut out = String::new();
    for line in [
        "BEGIN:VCALENDAR".to_string(),
        format!("PRODID:{PRODID}"),
        "VERSION:2.0".into(),
        "CALSCALE:GREGORIAN".into(),
        "METHOD:PUBLISH".into(),
        format!(
            "X-WR-CALNAME:{}",
            text(&format!("{} pickups", loc.spec.name))
        ),
        format!("X-WR-TIMEZONE:{}", loc.spec.timezone),
    ] {
        push_folded(&mut out, &line);
    }
    if let Some(vtz) = vtimezone(loc.spec.timezone) {
        for line in vtz.lines() {
            push_folded(&mut out, line);
        }
    }
    let count = events.len() as u64;
    for (_, _, lines) in events {
        for line in lines {
            push_folded(&mut out, &line);
        }
    }
    push_folded(&mut out, "END:VCALENDAR");
    (out, count)
}

#[allow(clippy::too_many_arguments)]
fn pickup_lines(
    world: &World,
    loc: &Location,
    zoned: bool,
    stamp: DateTime<Utc>,
    p: &Pickup,
    e: &Entry,
    state: &ResVersion,
    seq: u32,
) -> Vec<String> {
    let res = p.res;
    let vehicle = world.vehicle(state.vehicle_id);
    let ret_loc = world.location(state.return_location_id);
    let name = format!("{} {}", e.first_name, e.last_name);
    let code = e.with_code.then_some(res.code.as_str());
    let summary = match (e.duplicate, code) {
        (false, Some(code)) => format!(
            "Pickup {code} – {name} – {} {} ({})",
            short_make(vehicle.make),
            vehicle.model,
            vehicle.plate
        ),
        (false, None) => {
            format!(
                "Pickup – {name} – {} {} ({})",
                short_make(vehicle.make),
                vehicle.model,
                vehicle.plate
            )
        }
        (true, Some(code)) => format!(
            "{name} pickup, {} {} [{code}]",
            vehicle.model, vehicle.plate
        ),
        (true, None) => format!("{name} pickup, {} {}", vehicle.model, vehicle.plate),
    };
    let mut description = vec![format!("Customer: {name}")];
    if let Some(phone) = &e.phone {
        description.push(format!("Phone: {phone}"));
    }
    description.push(format!("Email: {}", p.customer.email));
    description.push(format!(
        "Return: {} at {}",
        state
            .return_at
            .with_timezone(&ret_loc.tz)
            .format("%Y-%m-%d %H:%M"),
        ret_loc.spec.name
    ));
    description.push(format!(
        "Vehicle: {} {}, {}",
        vehicle.make, vehicle.model, vehicle.plate
    ));
    if let Some(code) = code {
        description.push(format!("Booking code: {code}"));
    }
    let last_modified = state.at.max(e.created);
    let form = if zoned { e.form } else { TimeForm::Utc };
    let start = state.pickup_at;
    let end = start + Duration::minutes(PICKUP_MINUTES);
    vec![
        "BEGIN:VEVENT".into(),
        time_prop("DTSTART", start, loc, form),
        time_prop("DTEND", end, loc, form),
        format!("DTSTAMP:{}", utc(stamp)),
        format!("UID:{}", e.uid),
        format!("CREATED:{}", utc(e.created)),
        format!("DESCRIPTION:{}", text(&description.join("\n"))),
        format!("LAST-MODIFIED:{}", utc(last_modified)),
        format!(
            "LOCATION:{}",
            text(&format!("{}, {}", loc.spec.name, loc.spec.address))
        ),
        format!("SEQUENCE:{seq}"),
        format!(
            "STATUS:{}",
            if state.status == Status::Cancelled {
                "CANCELLED"
            } else {
                "CONFIRMED"
            }
        ),
        format!("SUMMARY:{}", text(&summary)),
        "TRANSP:OPAQUE".into(),
        "END:VEVENT".into(),
    ]
}

/// Desk shorthand for the longer makes.
fn short_make(make: &str) -> &str {
    match make {
        "Volkswagen" => "VW",
        "Mercedes-Benz" => "Mercedes",
        other => other,
    }
}

/// The VEVENTs of one unrelated entry: a moved occurrence of a series is a VEVENT of its own.
fn unrelated_lines(
    loc: &Location,
    zoned: bool,
    stamp: DateTime<Utc>,
    u: &Unrelated,
) -> Vec<Vec<String>> {
    let form = if zoned {
        TimeForm::Zoned
    } else {
        TimeForm::Utc
    };
    let head = |seq: u32, modified: DateTime<Utc>| {
        vec![
            format!("DTSTAMP:{}", utc(stamp)),
            format!("UID:{}", u.uid),
            format!("CREATED:{}", utc(u.created)),
            format!("LAST-MODIFIED:{}", utc(modified)),
            format!("LOCATION:{}", text(loc.spec.name)),
            format!("SEQUENCE:{seq}"),
            "STATUS:CONFIRMED".into(),
            format!("SUMMARY:{}", text(u.summary)),
        ]
    };
    let event = |times: Vec<String>, extra: Vec<String>, rest: Vec<String>, transp: &str| {
        let mut lines = vec!["BEGIN:VEVENT".to_string()];
        lines.extend(times);
        lines.extend(extra);
        lines.extend(rest);
        lines.push(format!("TRANSP:{transp}"));
        lines.push("END:VEVENT".into());
        lines
    };
    match &u.kind {
        UnrelatedKind::Timed { start, minutes } => {
            let times = vec![
                time_prop("DTSTART", *start, loc, form),
                time_prop("DTEND", *start + Duration::minutes(*minutes), loc, form),
            ];
            vec![event(times, vec![], head(0, u.created), "OPAQUE")]
        }
        UnrelatedKind::AllDay { date, days } => {
            let times = vec![
                format!("DTSTART;VALUE=DATE:{}", date.format("%Y%m%d")),
                format!(
                    "DTEND;VALUE=DATE:{}",
                    (*date + Duration::days(*days)).format("%Y%m%d")
                ),
            ];
            vec![event(times, vec![], head(0, u.created), "TRANSPARENT")]
        }
        UnrelatedKind::Weekly {
            start,
            minutes,
            count,
            moved,
        } => {
            let times = vec![
                time_prop("DTSTART", *start, loc, form),
                time_prop("DTEND", *start + Duration::minutes(*minutes), loc, form),
            ];
            let rrule = vec![format!("RRULE:FREQ=WEEKLY;COUNT={count}")];
            let mut out = vec![event(times, rrule, head(0, u.created), "OPAQUE")];
            if let Some((index, shift, at)) = moved.filter(|(_, _, at)| *at <= stamp) {
                // Occurrences of a zoned series keep their wall-clock time across DST changes.
                let original = if form == TimeForm::Zoned {
                    let naive = start.with_timezone(&loc.tz).naive_local()
                        + Duration::weeks(i64::from(index));
                    loc.tz
                        .from_local_datetime(&naive)
                        .earliest()
                        .map(|t| t.with_timezone(&Utc))
                } else {
                    Some(*start + Duration::weeks(i64::from(index)))
                };
                if let Some(original) = original {
                    let moved_start = original + shift;
                    let times = vec![
                        time_prop("DTSTART", moved_start, loc, form),
                        time_prop(
                            "DTEND",
                            moved_start + Duration::minutes(*minutes),
                            loc,
                            form,
                        ),
                    ];
                    let rid = vec![time_prop("RECURRENCE-ID", original, loc, form)];
                    out.push(event(times, rid, head(1, at), "OPAQUE"));
                }
            }
            out
        }
    }
}

fn time_prop(name: &str, t: DateTime<Utc>, loc: &Location, form: TimeForm) -> String {
    match form {
        TimeForm::Zoned => format!("{name};TZID={}:{}", loc.spec.timezone, local(t, loc.tz)),
        TimeForm::Floating => format!("{name}:{}", local(t, loc.tz)),
        TimeForm::Utc => format!("{name}:{}", utc(t)),
    }
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y%m%dT%H%M%S").to_string()
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// `dir` as the incident names it ("evidence/calendar"): relative to the incident folder, with
/// forward slashes on every platform.
fn shown_prefix(dir: &Path) -> String {
    let base = dir.parent().and_then(Path::parent);
    let rel = base.and_then(|b| dir.strip_prefix(b).ok()).unwrap_or(dir);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// A TEXT value escaped as RFC 5545 3.3.11 requires.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends a content line, folded at 75 octets (RFC 5545 3.1) and never inside a UTF-8
/// character, with CRLF endings.
fn push_folded(out: &mut String, line: &str) {
    let mut rest = line;
    // The first line has 75 octets; continuations spend one on the leading space.
    let mut room = 75;
    while rest.len() > room {
        let mut cut = room;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        room = 74;
    }
    out.push_str(rest);
    out.push_str("\r\n");
}

/// The zone definitions Google writes, for the zones of the simulated locations. A zone not
/// listed here has its calendar written in UTC.
fn vtimezone(zone: &str) -> Option<&'static str> {
    Some(match zone {
        "Europe/Lisbon" => VTZ_LISBON,
        "Europe/Berlin" => VTZ_BERLIN,
        "Europe/London" => VTZ_LONDON,
        "America/New_York" => VTZ_NEW_YORK,
        "Asia/Tokyo" => VTZ_TOKYO,
        _ => return None,
    })
}

const VTZ_LISBON: &str = "BEGIN:VTIMEZONE
TZID:Europe/Lisbon
X-LIC-LOCATION:Europe/Lisbon
BEGIN:DAYLIGHT
TZOFFSETFROM:+0000
TZOFFSETTO:+0100
TZNAME:WEST
DTSTART:19700329T010000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0100
TZOFFSETTO:+0000
TZNAME:WET
DTSTART:19701025T020000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE";

const VTZ_BERLIN: &str = "BEGIN:VTIMEZONE
TZID:Europe/Berlin
X-LIC-LOCATION:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE";

const VTZ_LONDON: &str = "BEGIN:VTIMEZONE
TZID:Europe/London
X-LIC-LOCATION:Europe/London
BEGIN:DAYLIGHT
TZOFFSETFROM:+0000
TZOFFSETTO:+0100
TZNAME:BST
DTSTART:19700329T010000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0100
TZOFFSETTO:+0000
TZNAME:GMT
DTSTART:19701025T020000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE";

const VTZ_NEW_YORK: &str = "BEGIN:VTIMEZONE
TZID:America/New_York
X-LIC-LOCATION:America/New_York
BEGIN:DAYLIGHT
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
TZNAME:EDT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
TZNAME:EST
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
END:STANDARD
END:VTIMEZONE";

const VTZ_TOKYO: &str = "BEGIN:VTIMEZONE
TZID:Asia/Tokyo
X-LIC-LOCATION:Asia/Tokyo
BEGIN:STANDARD
TZOFFSETFROM:+0900
TZOFFSETTO:+0900
TZNAME:JST
DTSTART:19700101T000000
END:STANDARD
END:VTIMEZONE";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::manifest::Mention;
    use crate::simulate::world;
    use chrono::{Datelike, NaiveDateTime, Offset, Weekday};
    use std::collections::BTreeMap;
    use std::sync::OnceLock;

    fn world() -> &'static World {
        static WORLD: OnceLock<World> = OnceLock::new();
        WORLD.get_or_init(|| {
            world::generate(&world::Params {
                seed: 11,
                noise: Noise::new(NoiseLevel::Medium),
                gap_reservations: 300,
                gap_days: 60,
                incident_at: world::default_incident_at(),
            })
        })
    }

    struct Out {
        root: tempfile::TempDir,
        written: Written,
        mentions: Vec<Mention>,
    }

    fn export(level: NoiseLevel, seed: u64) -> Out {
        let root = tempfile::tempdir().unwrap();
        let noise = Noise::new(level);
        let ctx = Ctx {
            world: world(),
            noise: &noise,
            seed,
        };
        let mut manifest = Manifest::default();
        let written = write(
            &ctx,
            &root.path().join("evidence").join("calendar"),
            &mut manifest,
        )
        .unwrap();
        Out {
            root,
            written,
            mentions: manifest.into_sorted(),
        }
    }

    fn read(out: &Out, file: &str) -> String {
        std::fs::read_to_string(out.root.path().join(file)).unwrap()
    }

    /// A VEVENT's properties: name → (parameters, value).
    type Event = BTreeMap<String, (String, String)>;

    struct Calendar {
        zone: Tz,
        events: Vec<Event>,
    }

    fn parse(ics: &str) -> Calendar {
        let unfolded = ics.replace("\r\n ", "");
        let mut zone = None;
        let mut events = Vec::new();
        let mut current: Option<Event> = None;
        let mut depth = 0;
        for line in unfolded.split("\r\n").filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("no colon in {line:?}"));
            let (name, params) = key.split_once(';').unwrap_or((key, ""));
            match (name, value) {
                ("BEGIN", "VEVENT") => current = Some(Event::new()),
                ("END", "VEVENT") => events.push(current.take().unwrap()),
                ("BEGIN", _) => depth += 1,
                ("END", _) => depth -= 1,
                ("X-WR-TIMEZONE", z) => zone = Some(z.parse::<Tz>().unwrap()),
                _ => {
                    if let Some(ev) = current.as_mut() {
                        assert!(
                            ev.insert(name.into(), (params.into(), value.into()))
                                .is_none(),
                            "{name} twice"
                        );
                    }
                }
            }
        }
        assert_eq!(depth, 0);
        Calendar {
            zone: zone.expect("X-WR-TIMEZONE"),
            events,
        }
    }

    /// The instant a DTSTART-like property means, in any of the three ways the export writes it.
    fn instant(cal: &Calendar, (params, value): &(String, String)) -> DateTime<Utc> {
        if let Some(v) = value.strip_suffix('Z') {
            return NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S")
                .unwrap()
                .and_utc();
        }
        let naive = NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S").unwrap();
        let tz = match params.strip_prefix("TZID=") {
            Some(zone) => zone.parse::<Tz>().unwrap(),
            None => cal.zone,
        };
        tz.from_local_datetime(&naive)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn find<'c>(cal: &'c Calendar, uid: &str) -> &'c Event {
        let mut hits = cal
            .events
            .iter()
            .filter(|e| e["UID"].1 == uid && !e.contains_key("RECURRENCE-ID"));
        let ev = hits.next().unwrap_or_else(|| panic!("no event {uid}"));
        assert!(hits.next().is_none(), "{uid} twice");
        ev
    }

    /// (file, UID, SEQUENCE) of a manifest locator.
    fn locator(m: &Mention) -> (&str, &str, u32) {
        let mut parts = m.locator.split('#');
        let file = parts.next().unwrap();
        let uid = parts.next().unwrap();
        let seq = parts
            .next()
            .unwrap()
            .strip_prefix("SEQUENCE=")
            .unwrap()
            .parse()
            .unwrap();
        (file, uid, seq)
    }

    #[test]
    fn lines_end_in_crlf_and_fold_within_75_octets() {
        let out = export(NoiseLevel::High, 5);
        assert!(
            out.written.files.len() > world().locations.len(),
            "older snapshot at high noise"
        );
        let mut continuations = 0;
        for file in &out.written.files {
            let bytes = std::fs::read(out.root.path().join(file)).unwrap();
            assert!(bytes.ends_with(b"END:VCALENDAR\r\n"), "{file}");
            for (i, b) in bytes.iter().enumerate() {
                match b {
                    b'\n' => assert!(i > 0 && bytes[i - 1] == b'\r', "{file}: bare LF at {i}"),
                    b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "{file}: bare CR at {i}"),
                    _ => {}
                }
            }
            let text = String::from_utf8(bytes).unwrap();
            for line in text.split("\r\n") {
                assert!(line.len() <= 75, "{file}: {} octets: {line}", line.len());
                continuations += usize::from(line.starts_with(' '));
            }
        }
        assert!(
            continuations > 0,
            "long descriptions should have been folded"
        );
    }

    #[test]
    fn events_show_each_reservation_as_it_stood_at_the_export() {
        let w = world();
        let out = export(NoiseLevel::Medium, 5);
        let mut cals = BTreeMap::new();
        for file in out.written.files.iter().filter(|f| !f.contains("/older/")) {
            cals.insert(file.as_str(), parse(&read(&out, file)));
        }
        let mut forms = BTreeMap::new();
        let mut cancelled = 0;
        let mut modified = 0;
        let mut mentioned = BTreeSet::new();
        for m in out
            .mentions
            .iter()
            .filter(|m| m.table == "reservations" && !m.locator.contains("/older/"))
        {
            let (file, uid, seq) = locator(m);
            let cal = &cals[file];
            let ev = find(cal, uid);
            let res = w.reservation(m.row_id);
            let latest = res.latest();
            let edits = res
                .versions
                .iter()
                .filter(|v| matches!(v.change, Change::Modified | Change::Cancelled))
                .count();
            assert_eq!(seq as usize, edits, "{}", res.code);
            assert_eq!(ev["SEQUENCE"].1, seq.to_string());
            assert!(
                res.versions
                    .iter()
                    .any(|v| edits_event(v.change) && w.in_gap(v.at)),
                "{} not edited in the gap",
                res.code
            );
            let start = instant(cal, &ev["DTSTART"]);
            assert_eq!(start, latest.pickup_at, "{} {uid}", res.code);
            assert_eq!(instant(cal, &ev["DTEND"]) - start, Duration::minutes(30));
            let status = if latest.status == Status::Cancelled {
                "CANCELLED"
            } else {
                "CONFIRMED"
            };
            assert_eq!(ev["STATUS"].1, status, "{}", res.code);
            cancelled += usize::from(status == "CANCELLED");
            modified += usize::from(seq > 0 && status == "CONFIRMED");
            let form = match (ev["DTSTART"].0.as_str(), ev["DTSTART"].1.ends_with('Z')) {
                (p, _) if p.starts_with("TZID=") => "zoned",
                (_, true) => "utc",
                _ => "floating",
            };
            *forms.entry(form).or_insert(0) += 1;
            let customer = out
                .mentions
                .iter()
                .find(|c| c.table == "customers" && c.locator == m.locator);
            assert_eq!(customer.map(|c| c.row_id), Some(res.customer_id));
            mentioned.insert(m.row_id);
        }
        assert!(
            cancelled > 0 && modified > 0,
            "cancelled {cancelled}, modified {modified}"
        );
        assert_eq!(
            forms.len(),
            3,
            "all three time conventions should occur: {forms:?}"
        );
        let booked_in_gap: Vec<i64> = w
            .reservations
            .iter()
            .filter(|r| w.in_gap(r.created_at))
            .map(|r| r.id)
            .collect();
        let covered = booked_in_gap
            .iter()
            .filter(|id| mentioned.contains(id))
            .count();
        assert!(
            covered as f64 >= 0.85 * booked_in_gap.len() as f64,
            "{covered} of {}",
            booked_in_gap.len()
        );
        // Every VEVENT that is not a pickup is an unrelated entry, never a reservation the
        // manifest failed to record.
        let pickups: usize = cals
            .values()
            .flat_map(|c| &c.events)
            .filter(|e| e["SUMMARY"].1.contains("pickup") || e["SUMMARY"].1.starts_with("Pickup"))
            .count();
        let listed = out
            .mentions
            .iter()
            .filter(|m| m.table == "reservations" && !m.locator.contains("/older/"))
            .count();
        assert_eq!(pickups, listed);
    }

    #[test]
    fn older_snapshot_holds_earlier_versions_only_above_low_noise() {
        let w = world();
        let out = export(NoiseLevel::Medium, 5);
        let older: Vec<&String> = out
            .written
            .files
            .iter()
            .filter(|f| f.contains("/older/"))
            .collect();
        assert_eq!(older.len(), 1);
        let snap = parse(&read(&out, older[0]));
        let main_file = out.written.files.iter().find(|f| {
            let code = older[0].rsplit('/').next().unwrap();
            f.ends_with(&format!("/{}.ics", &code[..7]))
        });
        let main = parse(&read(&out, main_file.unwrap()));
        let stamp = instant(&snap, &snap.events[0]["DTSTAMP"]);
        assert!(w.in_gap(stamp));
        let mut stale = 0;
        for m in out
            .mentions
            .iter()
            .filter(|m| m.table == "reservations" && m.locator.starts_with(older[0].as_str()))
        {
            let (_, uid, seq) = locator(m);
            let ev = find(&snap, uid);
            let res = w.reservation(m.row_id);
            let then = res.at(stamp).unwrap();
            assert_eq!(
                instant(&snap, &ev["DTSTART"]),
                then.pickup_at,
                "{}",
                res.code
            );
            match main.events.iter().find(|e| e["UID"].1 == uid) {
                Some(now) => {
                    let now_seq: u32 = now["SEQUENCE"].1.parse().unwrap();
                    assert!(seq <= now_seq, "{}", res.code);
                    stale += usize::from(seq < now_seq);
                }
                None => {
                    assert_eq!(
                        res.latest().status,
                        Status::Cancelled,
                        "{} vanished",
                        res.code
                    );
                    stale += 1;
                }
            }
        }
        assert!(stale > 0, "the snapshot should predate some edits");
        let low = export(NoiseLevel::Low, 5);
        assert_eq!(low.written.files.len(), w.locations.len());
    }

    #[test]
    fn same_seed_gives_identical_files() {
        let a = export(NoiseLevel::High, 9);
        let b = export(NoiseLevel::High, 9);
        assert_eq!(a.written.files, b.written.files);
        assert_eq!(a.written.items, b.written.items);
        for file in &a.written.files {
            assert!(
                std::fs::read(a.root.path().join(file)).unwrap()
                    == std::fs::read(b.root.path().join(file)).unwrap(),
                "{file}"
            );
        }
        assert_eq!(a.mentions, b.mentions);
        let c = export(NoiseLevel::High, 10);
        assert_ne!(read(&a, &a.written.files[0]), read(&c, &c.written.files[0]));
    }

    #[test]
    fn items_count_every_vevent_written() {
        let out = export(NoiseLevel::High, 3);
        let total: usize = out
            .written
            .files
            .iter()
            .map(|f| read(&out, f).matches("BEGIN:VEVENT\r\n").count())
            .sum();
        assert_eq!(out.written.items as usize, total);
        let all: Vec<Event> = out
            .written
            .files
            .iter()
            .flat_map(|f| parse(&read(&out, f)).events)
            .collect();
        assert!(all.iter().any(|e| e.contains_key("RRULE")));
        assert!(all.iter().any(|e| e["DTSTART"].0 == "VALUE=DATE"));
        assert!(all.iter().any(|e| e.contains_key("RECURRENCE-ID")));
        // An export cannot show an edit made after it was downloaded, older snapshot included.
        for e in &all {
            let (created, modified, stamp) =
                (&e["CREATED"].1, &e["LAST-MODIFIED"].1, &e["DTSTAMP"].1);
            assert!(
                created <= modified && modified <= stamp,
                "{}: {created} {modified} {stamp}",
                e["UID"].1
            );
        }
    }

    #[test]
    fn folding_never_splits_a_character() {
        for prefix in ["", "D", "DE", "DES"] {
            let line = format!(
                "DESCRIPTION:{prefix}{}",
                "Jürgen Schröder – 品川 ".repeat(12)
            );
            let mut out = String::new();
            push_folded(&mut out, &line);
            for physical in out.strip_suffix("\r\n").unwrap().split("\r\n") {
                assert!(physical.len() <= 75, "{}", physical.len());
            }
            assert_eq!(out.replace("\r\n ", ""), format!("{line}\r\n"));
        }
        let mut short = String::new();
        push_folded(&mut short, &"x".repeat(75));
        assert_eq!(short, format!("{}\r\n", "x".repeat(75)));
    }

    #[test]
    fn text_values_are_escaped() {
        assert_eq!(text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }

    /// The day of month of the `n`th (negative: from the end) `weekday` of a month.
    fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: i32) -> NaiveDate {
        let days: Vec<NaiveDate> = (1..=31)
            .filter_map(|d| NaiveDate::from_ymd_opt(year, month, d))
            .filter(|d| d.weekday() == weekday)
            .collect();
        if n > 0 {
            days[(n - 1) as usize]
        } else {
            days[days.len() - (-n) as usize]
        }
    }

    fn offset_secs(s: &str) -> i32 {
        let sign = if s.starts_with('-') { -1 } else { 1 };
        let h: i32 = s[1..3].parse().unwrap();
        let m: i32 = s[3..5].parse().unwrap();
        sign * (h * 3600 + m * 60)
    }

    #[test]
    fn vtimezones_agree_with_the_tz_database() {
        for loc in &world().locations {
            let vtz = vtimezone(loc.spec.timezone)
                .unwrap_or_else(|| panic!("no VTIMEZONE for {}", loc.spec.timezone));
            assert!(vtz.contains(&format!("TZID:{}\n", loc.spec.timezone)));
            let tz = loc.tz;
            let offset_at = |t: DateTime<Utc>| {
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc()
            };
            let mut rules = 0;
            for part in vtz.split("BEGIN:").skip(2) {
                let prop = |name: &str| {
                    part.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .unwrap_or_else(|| panic!("{name} in {part}"))
                };
                let from = offset_secs(prop("TZOFFSETFROM:"));
                let to = offset_secs(prop("TZOFFSETTO:"));
                let Some(rrule) = part.lines().find_map(|l| l.strip_prefix("RRULE:")) else {
                    for t in [
                        Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0),
                        Utc.with_ymd_and_hms(2026, 7, 15, 12, 0, 0),
                    ] {
                        assert_eq!(offset_at(t.unwrap()), to, "{}", loc.spec.timezone);
                    }
                    continue;
                };
                let field = |k: &str| rrule.split(';').find_map(|f| f.strip_prefix(k)).unwrap();
                let month: u32 = field("BYMONTH=").parse().unwrap();
                let byday = field("BYDAY=");
                let n: i32 = byday.strip_suffix("SU").unwrap().parse().unwrap();
                let start =
                    NaiveDateTime::parse_from_str(prop("DTSTART:"), "%Y%m%dT%H%M%S").unwrap();
                for year in [2025, 2026, 2027] {
                    let local = nth_weekday(year, month, Weekday::Sun, n).and_time(start.time());
                    let switch = (local - Duration::seconds(i64::from(from))).and_utc();
                    assert_eq!(
                        offset_at(switch - Duration::minutes(1)),
                        from,
                        "{} {year}",
                        loc.spec.timezone
                    );
                    assert_eq!(offset_at(switch), to, "{} {year}", loc.spec.timezone);
                }
                rules += 1;
            }
            assert!(
                rules == 2 || loc.spec.timezone == "Asia/Tokyo",
                "{}",
                loc.spec.timezone
            );
        }
    }
}
