//! The HTML report in a real headless browser: its filters (given in the URL fragment) show as
//! many changes as the plan file counts, it loads nothing from the network, and customer text in
//! the evidence stays text.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Debian's chromium, or a skip (a failure when GAPFILL_REQUIRE_BROWSER is set, as
/// scripts/test.sh does after installing it).
fn browser() -> Option<PathBuf> {
    let found = std::env::var_os("GAPFILL_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from))
        .find(|p| p.exists());
    if found.is_none() {
        if std::env::var_os("GAPFILL_REQUIRE_BROWSER").is_some() {
            panic!("chromium is not installed (apt-get install -y chromium; scripts/test.sh does)");
        }
        eprintln!("skipping: chromium is not installed (scripts/test.sh installs it)");
    }
    found
}

/// The DOM after the page's script ran, for `page#fragment`.
fn dump_dom(chromium: &Path, page: &Path, fragment: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let dom = profile.path().join("dom.html");
    let url = format!("file://{}{fragment}", page.display());
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(&url)
        // A file, not a pipe: the DOM is larger than a pipe's buffer, and nobody reads the pipe
        // while waiting.
        .stdout(std::fs::File::create(&dom).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish rendering {url} within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    String::from_utf8_lossy(&std::fs::read(&dom).unwrap()).into_owned()
}

/// The number of changes the page says it shows.
fn visible(dom: &str) -> u64 {
    let re = regex::Regex::new(r#"<output id="state" data-visible="(\d+)""#).unwrap();
    re.captures(dom)
        .unwrap_or_else(|| panic!("no #state in the DOM:\n{}", &dom[..dom.len().min(2000)]))[1]
        .parse()
        .unwrap()
}

/// How many changes the plan file's summary counts for a table (all when `None`) and decision.
fn counted(plan: &Value, table: Option<&str>, decision: Option<&str>) -> u64 {
    plan["summary"]["tables"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(t, _)| table.is_none_or(|want| want == *t))
        .flat_map(|(_, s)| [&s["inserts"], &s["updates"]])
        .flat_map(|by| by.as_object().unwrap().iter())
        .filter(|(d, _)| decision.is_none_or(|want| want == *d))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

#[test]
fn the_page_filters_as_the_plan_counts_and_loads_nothing() {
    let (dir, incident) = incident(2, 60, "high");
    let copy = dir.path().join("copy.db");
    std::fs::copy(incident.join("restored.db"), &copy).unwrap();
    let plan_path = dir.path().join("plan.json");
    let page = dir.path().join("plan.html");
    plan_incident(
        &incident,
        &sqlite_url(&copy),
        &plan_path,
        &["--report", page.to_str().unwrap()],
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&page).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the report holds customer data");
    }
    let html = std::fs::read_to_string(&page).unwrap();
    // The same plan gives the same page, from `plan --report` and from `show`.
    assert_eq!(
        html,
        gapfill_ok(&["show", plan_path.to_str().unwrap(), "--format", "html"])
    );

    // Nothing to fetch: no element of ours names a source or a link, and no CSS import or url().
    let tag = regex::Regex::new(r"<[a-zA-Z][^>]*>").unwrap();
    let attr = regex::Regex::new(r#"(?i)\s(src|href|action|srcset|poster|data)\s*="#).unwrap();
    for t in tag.find_iter(&html) {
        assert!(
            !attr.is_match(t.as_str()),
            "the page loads something: {}",
            t.as_str()
        );
    }
    for needle in ["url(", "@import", "<link", "<iframe", "<img"] {
        assert!(!html.contains(needle), "the page contains {needle}");
    }
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));

    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let total = plan["changes"].as_array().unwrap().len() as u64;
    assert_eq!(counted(&plan, None, None), total);
    let Some(chromium) = browser() else { return };

    // Data: a filter in the fragment, and what the plan file says it should show.
    let confident = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["confidence"].as_f64().unwrap() >= 0.99 && c["table"] == "reservations")
        .count() as u64;
    let cases = [
        ("", total),
        (
            "#table=payments&decision=rejected",
            counted(&plan, Some("payments"), Some("rejected")),
        ),
        (
            "#table=customers&decision=needs_review",
            counted(&plan, Some("customers"), Some("needs_review")),
        ),
        ("#decision=accepted", counted(&plan, None, Some("accepted"))),
        ("#table=reservations&min=0.99", confident),
    ];
    // Guard the cases themselves: they must tell filters apart.
    assert!(cases[1].1 > 0 && cases[1].1 < total, "{cases:?}");
    assert!(cases[3].1 > 0 && cases[3].1 < total, "{cases:?}");
    for (fragment, want) in cases {
        let dom = dump_dom(&chromium, &page, fragment);
        assert_eq!(visible(&dom), want, "filter {fragment:?}");
        assert_eq!(
            dom.matches("class=\"change ").count() as u64,
            total,
            "every change is in the page, hidden or not"
        );
    }
}

#[test]
fn customer_text_in_evidence_stays_text_in_the_browser() {
    let (dir, incident) = incident(3, 60, "high");
    let copy = dir.path().join("copy.db");
    std::fs::copy(incident.join("restored.db"), &copy).unwrap();
    let plan_path = dir.path().join("plan.json");
    plan_incident(&incident, &sqlite_url(&copy), &plan_path, &[]);
    // A customer whose name and a mail whose subject try to become markup.
    let hostile = [
        "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">",
        "</script><script>document.body.setAttribute('data-pwned','2')</script>",
        "\"><b id=\"injected\">bold</b>",
        "' onmouseover='x",
    ];
    let mut plan: Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let ids: Vec<String> = plan["changes"][0]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    let id = &ids[0];
    for (n, h) in hostile.iter().enumerate() {
        plan["evidence"][id]["fields"][format!("name{n}")] = (*h).into();
    }
    plan["evidence"][id]["locator"] = hostile[1].into();
    plan["changes"][0]["reasons"] = serde_json::json!([hostile[0]]);
    plan["changes"][0]["table"] = hostile[2].into();
    std::fs::write(&plan_path, serde_json::to_string_pretty(&plan).unwrap()).unwrap();

    let html = gapfill_ok(&["show", plan_path.to_str().unwrap(), "--format", "html"]);
    for h in hostile {
        assert!(!html.contains(h), "unescaped in the page: {h}");
    }
    assert!(html.contains("&lt;img src=x onerror=&quot;document.body.setAttribute(&#39;data-pwned&#39;,&#39;1&#39;)&quot;&gt;"));
    let markdown = gapfill_ok(&["show", plan_path.to_str().unwrap(), "--format", "markdown"]);
    for h in hostile.iter().filter(|h| h.contains('<')) {
        assert!(!markdown.contains(h), "unescaped in the markdown: {h}");
    }

    let Some(chromium) = browser() else { return };
    let page = dir.path().join("hostile.html");
    std::fs::write(&page, &html).unwrap();
    let dom = dump_dom(&chromium, &page, "");
    // The text itself is in the DOM, escaped; an attribute on <body> or an element would not be.
    let body = regex::Regex::new(r"<body[^>]*>").unwrap();
    let body = body.find(&dom).expect("a body").as_str();
    assert!(
        !body.contains("data-pwned"),
        "a script from the evidence ran: {body}"
    );
    assert!(
        !dom.contains("<b id=\"injected\""),
        "markup from the evidence became elements"
    );
    assert!(
        dom.contains("&lt;b id=\"injected\"&gt;bold&lt;/b&gt;"),
        "the text is shown"
    );
    assert!(
        !dom.contains("<img"),
        "an image element came from the evidence"
    );
    let total = plan["changes"].as_array().unwrap().len() as u64;
    assert_eq!(visible(&dom), total, "the page's own script still ran");
}
