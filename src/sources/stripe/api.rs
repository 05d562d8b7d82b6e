//! The live Stripe API (`--stripe-api`), through async-stripe.
//!
//! Every object is fetched raw (`miniserde::json::Value`) rather than as async-stripe's typed
//! structs: those refuse whole objects over one field a Stripe-compatible server (or an older
//! API version) shapes differently, and then a payment would be lost. Raw objects go through
//! the same lenient reading as dumps ([`super::object`]).
//!
//! Lists are paged with `starting_after` until `has_more` is false. The window goes to the
//! server as `created[gt]` (the one form every list and every compatible server takes); a
//! server that refuses it for a list gets that list unfiltered, and the window is applied here
//! either way. 429 and 5xx answers are retried with exponential backoff (async-stripe's
//! strategy). 401/403 stop the pull with an error that says what to do and never shows the key.
//!
//! With a cache folder, each list's objects are appended to `<list>.jsonl` page by page and the
//! cursor saved after each page (`<list>.state.json`), so an interrupted pull resumes where it
//! stopped and a finished list is not fetched again. The cache holds customer data and never
//! the key.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use stripe::{ClientBuilder, RequestStrategy};
use stripe_client_core::{RequestBuilder, StripeMethod};

use super::{emit, Counting, Dedup, RulesSink, StripeError, StripeRules};
use crate::evidence::{Provenance, Sink, SkipReason, SourceKind, Window};

/// A secret API key. Its Debug never shows it; nothing in this module prints it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(redacted)")
    }
}

/// How to reach the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub key: ApiKey,
    /// A Stripe-compatible server, e.g. "http://127.0.0.1:12111"; Stripe itself when None.
    pub base: Option<String>,
    /// Objects per page (Stripe allows 1–100).
    pub page_size: u8,
    /// Attempts per request, the first included, for 429, 5xx and network errors.
    pub attempts: u32,
    /// Progress lines on stderr, shown only when stderr is a terminal.
    pub progress: bool,
}

impl ApiConfig {
    pub fn new(key: ApiKey) -> ApiConfig {
        ApiConfig {
            key,
            base: None,
            page_size: 100,
            attempts: 5,
            progress: true,
        }
    }

    /// A key (required: blank is none) and a server (blank is Stripe itself), as the binary
    /// reads them from `STRIPE_API_KEY` and `STRIPE_API_BASE`.
    pub fn from_values(key: Option<&str>, base: Option<&str>) -> Result<ApiConfig, StripeError> {
        let key = key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(StripeError::NoKey)?;
        let mut c = ApiConfig::new(ApiKey::new(key));
        c.base = base
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_string);
        Ok(c)
    }

    /// The base URL as async-stripe wants it: ending in "/", without "/v1".
    fn base_url(&self) -> String {
        let b = self
            .base
            .as_deref()
            .unwrap_or("https://api.stripe.com/")
            .trim();
        let b = b.trim_end_matches('/');
        let b = b.strip_suffix("/v1").unwrap_or(b);
        format!("{b}/")
    }
}

/// One list of the API and how to ask for it.
pub struct List {
    pub name: &'static str,
    pub path: &'static str,
    /// A restricted key may lack it: without it the pull still has every payment, so a 403 is a
    /// warning, not a stop.
    pub optional: bool,
    /// A `status` to ask for: subscriptions are listed without the canceled ones otherwise.
    pub status: Option<&'static str>,
}

const fn list(name: &'static str, path: &'static str, optional: bool) -> List {
    List {
        name,
        path,
        optional,
        status: None,
    }
}

/// The lists read, in this order (customers first, as matching meets them first).
pub const LISTS: &[List] = &[
    list("customers", "/customers", false),
    list("payment_intents", "/payment_intents", false),
    list("charges", "/charges", false),
    list("refunds", "/refunds", false),
    list("checkout_sessions", "/checkout/sessions", false),
    list("invoices", "/invoices", true),
    list("disputes", "/disputes", true),
    List {
        status: Some("all"),
        ..list("subscriptions", "/subscriptions", true)
    },
    // Last: the events of the window (Stripe keeps 30 days of them) carry each object as it was
    // at that moment, the record of what changed after a list's copy was made.
    list("events", "/events", true),
];

/// What a pull saw. Every object fetched or taken from the cache ended as evidence or a skip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullStats {
    /// Objects per list (fetched now plus taken from the cache).
    pub objects: BTreeMap<&'static str, usize>,
    /// Of those, taken from the cache of an earlier, interrupted or finished pull.
    pub from_cache: usize,
    pub requests: usize,
    pub evidence: usize,
    pub skipped: BTreeMap<SkipReason, usize>,
    /// Lists the server does not have (404), e.g. checkout sessions on some compatible servers.
    pub unavailable: Vec<&'static str>,
    /// Lists whose `created` filter the server refused: fetched whole, filtered here.
    pub filtered_here: Vec<&'static str>,
    /// Optional lists the key may not read (HTTP 403): left out, with a warning.
    pub not_permitted: Vec<&'static str>,
}

impl PullStats {
    /// What a person should know of this pull: lists left out because the key may not read
    /// them.
    pub fn warnings(&self) -> Vec<String> {
        self.not_permitted
            .iter()
            .map(|name| {
                format!("Stripe API: the key may not read {name} (HTTP 403), so they were left out; give the restricted key read access to them to use what they hold")
            })
            .collect()
    }

    pub fn items(&self) -> usize {
        self.evidence + self.skipped.values().sum::<usize>()
    }
}

/// Pulls the window's objects from the API into `sink`, with duplicates recognised.
pub async fn pull(
    config: &ApiConfig,
    rules: &StripeRules,
    window: &Window,
    cache: Option<&Path>,
    sink: &mut dyn Sink,
) -> Result<PullStats, StripeError> {
    let mut dedup = Dedup::new(sink);
    pull_into(config, rules, window, cache, &mut dedup).await
}

#[derive(Serialize)]
struct ListParams<'a> {
    limit: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<Created>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
}

#[derive(Serialize)]
struct Created {
    gt: i64,
}

/// [`pull`] through the caller's [`Dedup`], shared with [`super::read_into`].
pub async fn pull_into(
    config: &ApiConfig,
    rules: &StripeRules,
    window: &Window,
    cache: Option<&Path>,
    dedup: &mut Dedup<'_>,
) -> Result<PullStats, StripeError> {
    let base = config.base_url();
    let secret = &config.key.0;
    let client = ClientBuilder::new(secret.clone())
        .url(base.clone())
        .request_strategy(RequestStrategy::ExponentialBackoff(config.attempts.max(1)))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| StripeError::BadBase {
            base: scrub(&base, secret),
            reason: scrub(&e.to_string(), secret),
        })?;
    let shown_base = scrub(&base, secret);
    let progress = config.progress && std::io::stderr().is_terminal();
    let duplicates_before = dedup.duplicates;
    let skipped_before = dedup.skipped.clone();
    let mut stats = PullStats::default();
    let mut counted = Counting::new(RulesSink {
        inner: dedup,
        rules,
    });
    let result = async {
        for list in LISTS {
            pull_list(
                &client,
                config,
                &shown_base,
                list,
                window,
                cache,
                progress,
                &mut stats,
                &mut counted,
            )
            .await?;
        }
        Ok(())
    }
    .await;
    let (evidence, mut skipped) = (counted.evidence, counted.skipped);
    let duplicates = dedup.duplicates - duplicates_before;
    for (reason, n) in dedup.skipped_since(&skipped_before) {
        *skipped.entry(reason).or_insert(0) += n;
    }
    stats.evidence = evidence - duplicates;
    stats.skipped = skipped;
    result.map(|()| stats)
}

#[allow(clippy::too_many_arguments)]
async fn pull_list(
    client: &stripe::Client,
    config: &ApiConfig,
    base: &str,
    list: &List,
    window: &Window,
    cache: Option<&Path>,
    progress: bool,
    stats: &mut PullStats,
    sink: &mut dyn Sink,
) -> Result<(), StripeError> {
    let (name, path) = (list.name, list.path);
    let secret = &config.key.0;
    let origin = format!("{base}v1{path}");
    let query = format!(
        "{origin} since={:?} until={:?}",
        window.since.map(|t| t.timestamp()),
        window.until.map(|t| t.timestamp())
    );
    let mut list_cache = match cache {
        Some(dir) => Some(ListCache::open(dir, name, &query)?),
        None => None,
    };
    let mut ids: HashSet<String> = HashSet::new();
    let mut count = 0usize;
    let prov = |id: &str| Provenance {
        source: SourceKind::Stripe,
        origin: origin.clone(),
        locator: id.to_string(),
    };
    let mut cursor = None;
    let mut filter = window.since.is_some();
    let mut probed = false;
    if let Some(c) = &mut list_cache {
        for obj in std::mem::take(&mut c.objects) {
            let id = object_id(&obj);
            if !ids.insert(id.clone()) {
                continue;
            }
            count += 1;
            stats.from_cache += 1;
            emit(&obj, prov(&id), window, sink);
        }
        cursor = c.state.cursor.clone();
        filter &= c.state.created_filter;
        if c.state.complete {
            stats.objects.insert(name, count);
            return Ok(());
        }
    }
    loop {
        let params = ListParams {
            limit: config.page_size.clamp(1, 100),
            starting_after: cursor.as_deref(),
            created: window.since.filter(|_| filter).map(|t| Created {
                gt: t.timestamp() - 1,
            }),
            status: list.status,
        };
        stats.requests += 1;
        // The first filtered request is a probe, sent once: compatible servers answer a filter
        // they lack with 400 or a bare 500, which retrying would only repeat.
        let probing = params.created.is_some() && cursor.is_none() && !probed;
        let strategy = if probing {
            RequestStrategy::Once
        } else {
            RequestStrategy::ExponentialBackoff(config.attempts.max(1))
        };
        let answer = RequestBuilder::new(StripeMethod::Get, path)
            .query(&params)
            .customize::<miniserde::json::Value>()
            .request_strategy(strategy)
            .send(client)
            .await;
        let refused_filter = match &answer {
            Err(stripe::StripeError::Stripe(_, status)) => {
                *status == 400 || (500..=599).contains(status)
            }
            Err(stripe::StripeError::JSONDeserialize(_)) => true,
            _ => false,
        };
        if probing {
            probed = true;
            if refused_filter {
                // This list does not take `created` here: read it whole and filter here.
                filter = false;
                stats.filtered_here.push(name);
                continue;
            }
            let transient = matches!(
                &answer,
                Err(stripe::StripeError::Stripe(_, 429))
                    | Err(stripe::StripeError::ClientError(_))
                    | Err(stripe::StripeError::Timeout)
            );
            if transient {
                // Asked again, filtered, with the retrying strategy.
                continue;
            }
        }
        let page = match answer {
            Ok(page) => to_json(page),
            Err(stripe::StripeError::Stripe(e, status)) => {
                let message = e
                    .message
                    .as_deref()
                    .map(|m| format!(": {}", scrub(m, secret)))
                    .unwrap_or_default();
                match status {
                    // A restricted key that may read the payments but not these: the pull
                    // goes on without them, and says so.
                    403 if list.optional && cursor.is_none() => {
                        stats.not_permitted.push(name);
                        break;
                    }
                    401 | 403 => {
                        return Err(StripeError::Unauthorized {
                            base: base.to_string(),
                            status,
                            object: name,
                            message,
                        })
                    }
                    404 if cursor.is_none() => {
                        stats.unavailable.push(name);
                        break;
                    }
                    _ => {
                        return Err(api_error(
                            base,
                            name,
                            &cursor,
                            format!("HTTP {status}{message}"),
                        ))
                    }
                }
            }
            Err(stripe::StripeError::JSONDeserialize(_))
                if cursor.is_none() && stats.objects.len() > stats.unavailable.len() =>
            {
                // async-stripe keeps no status for an error answer that is not JSON, which is
                // how some compatible servers say 404 for a list they lack. A server that
                // already answered another list properly is a Stripe server: this list is one
                // it does not have.
                stats.unavailable.push(name);
                break;
            }
            Err(stripe::StripeError::JSONDeserialize(_)) => {
                return Err(api_error(
                    base,
                    name,
                    &cursor,
                    "the answer was not what a Stripe server sends (is STRIPE_API_BASE right?)"
                        .into(),
                ))
            }
            Err(stripe::StripeError::Timeout) => {
                return Err(api_error(
                    base,
                    name,
                    &cursor,
                    "no answer within 60 s, after retries".into(),
                ))
            }
            Err(e) => {
                return Err(api_error(
                    base,
                    name,
                    &cursor,
                    scrub(&e.to_string(), secret),
                ))
            }
        };
        let data = page.get("data").and_then(Json::as_array);
        let Some(data) = data else {
            return Err(api_error(
                base,
                name,
                &cursor,
                "the answer is not a list (no \"data\" array)".into(),
            ));
        };
        let has_more = page.get("has_more").and_then(Json::as_bool) == Some(true);
        let mut fresh = Vec::new();
        for obj in data {
            let id = object_id(obj);
            if ids.insert(id.clone()) {
                fresh.push((id, obj));
            }
        }
        let last = data.last().map(object_id).filter(|s| !s.is_empty());
        if let Some(c) = &mut list_cache {
            c.append(fresh.iter().map(|(_, o)| *o))?;
        }
        for (id, obj) in fresh {
            count += 1;
            emit(obj, prov(&id), window, sink);
        }
        // An empty page, or one whose last object has no id, cannot be paged on from.
        let done = !has_more || last.is_none();
        if last.is_some() {
            cursor = last;
        }
        if let Some(c) = &mut list_cache {
            c.save(&cursor, filter, done)?;
        }
        if progress {
            eprint!("\rstripe: {name}: {count} objects");
            let _ = std::io::stderr().flush();
        }
        if done {
            break;
        }
    }
    if progress {
        eprintln!();
    }
    if stats.unavailable.contains(&name) || stats.not_permitted.contains(&name) {
        // Remembered as finished, so a resumed pull does not ask for it again.
        if let Some(c) = &mut list_cache {
            c.save(&None, filter, true)?;
        }
    }
    stats.objects.insert(name, count);
    Ok(())
}

fn api_error(
    base: &str,
    object: &'static str,
    cursor: &Option<String>,
    message: String,
) -> StripeError {
    StripeError::Api {
        base: base.to_string(),
        object,
        after: cursor
            .as_ref()
            .map(|c| format!(" after {c}"))
            .unwrap_or_default(),
        message,
    }
}

fn object_id(obj: &Json) -> String {
    obj.get("id")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Removes the key, and anything shaped like a Stripe secret or restricted key, from text that
/// came from elsewhere (a server's message, a library's error).
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    let mut out = text.to_string();
    if secret.len() >= 6 {
        out = out.replace(secret, "[redacted]");
    }
    static KEYS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = KEYS.get_or_init(|| {
        regex::Regex::new(r"\b(sk|rk)_(test|live)_[0-9A-Za-z*]+").expect("the pattern compiles")
    });
    re.replace_all(&out, "[redacted]").into_owned()
}

/// miniserde's value into serde_json's, for the reading shared with dumps.
fn to_json(v: miniserde::json::Value) -> Json {
    use miniserde::json::{Number, Value as M};
    match v {
        M::Null => Json::Null,
        M::Bool(b) => Json::Bool(b),
        M::Number(Number::U64(n)) => Json::from(n),
        M::Number(Number::I64(n)) => Json::from(n),
        M::Number(Number::F64(n)) => Json::from(n),
        M::String(s) => Json::String(s),
        M::Array(a) => Json::Array(a.into_iter().map(to_json).collect()),
        M::Object(o) => Json::Object(o.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The list and window this cache is for; another query starts afresh.
    query: String,
    cursor: Option<String>,
    complete: bool,
    created_filter: bool,
}

/// One list's cache: the objects fetched so far and where to go on from.
struct ListCache {
    jsonl: PathBuf,
    state_path: PathBuf,
    state: State,
    objects: Vec<Json>,
    out: std::io::BufWriter<std::fs::File>,
}

impl ListCache {
    fn open(dir: &Path, name: &str, query: &str) -> Result<ListCache, StripeError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StripeError::Cache { path, source }
        };
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let jsonl = dir.join(format!("{name}.jsonl"));
        let state_path = dir.join(format!("{name}.state.json"));
        let state: State = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|s: &State| s.query == query)
            .unwrap_or_else(|| State {
                query: query.to_string(),
                created_filter: true,
                ..State::default()
            });
        let fresh = state.cursor.is_none() && !state.complete;
        let mut objects = Vec::new();
        if fresh {
            write_private(&jsonl, b"").map_err(err(&jsonl))?;
        } else {
            let bytes = std::fs::read(&jsonl).map_err(err(&jsonl))?;
            // A pull killed mid-line leaves a partial last line: drop it; its page is fetched
            // again because the cursor was saved only after the page was written whole.
            let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            for line in bytes[..whole].split(|&b| b == b'\n') {
                if let Ok(v) = serde_json::from_slice::<Json>(line) {
                    objects.push(v);
                }
            }
            if whole < bytes.len() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&jsonl)
                    .map_err(err(&jsonl))?;
                f.set_len(whole as u64).map_err(err(&jsonl))?;
            }
        }
        let out = std::fs::OpenOptions::new()
            .append(true)
            .open(&jsonl)
            .map_err(err(&jsonl))?;
        Ok(ListCache {
            jsonl,
            state_path,
            state,
            objects,
            out: std::io::BufWriter::new(out),
        })
    }

    fn append<'a>(&mut self, objects: impl Iterator<Item = &'a Json>) -> Result<(), StripeError> {
        let err = |source| StripeError::Cache {
            path: self.jsonl.clone(),
            source,
        };
        for o in objects {
            serde_json::to_writer(&mut self.out, o).map_err(|e| err(e.into()))?;
            self.out.write_all(b"\n").map_err(err)?;
        }
        self.out.flush().map_err(err)
    }

    fn save(
        &mut self,
        cursor: &Option<String>,
        filter: bool,
        complete: bool,
    ) -> Result<(), StripeError> {
        self.state.cursor = cursor.clone();
        self.state.created_filter = filter;
        self.state.complete = complete;
        let bytes = serde_json::to_vec_pretty(&self.state).unwrap_or_default();
        crate::files::write_private(&self.state_path, &bytes).map_err(|source| StripeError::Cache {
            path: self.state_path.clone(),
            source,
        })
    }
}

/// Customer data: readable by its owner only (SPEC invariant 8).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)?.write_all(bytes)
}
