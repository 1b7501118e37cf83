//! The web dashboard at `/`: served by the runtime, assets with the right types and
//! cache validators, API-key behaviour, and a real headless Chromium (driven over the
//! DevTools protocol, no npm) that triggers a job from the generated form and watches
//! it complete through the live feed. Screenshots land in `target/e2e-artifacts/`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cdp::{Browser, artifacts_dir};
use crate::support::{Server, pipeline};

fn fixtures() -> String {
    [pipeline("echo", "fixture_echo", "roots = [\"ROOT\"]\nmax_concurrent = 2"), pipeline("noop", "fixture_noop", "")]
        .concat()
}

const API_KEY_CONFIG: &str = "[server]\napi_key = \"k\"\n";

// ------------------------------------------------------------------ plain HTTP

#[tokio::test]
async fn the_dashboard_and_its_assets_are_served_with_types_and_validators() {
    let server = Server::start(&fixtures());
    let get = |path: &str| server.http.get(format!("{}{path}", server.url)).send();

    let res = get("/").await.unwrap();
    assert_eq!(res.status(), 200);
    let header = |res: &reqwest::Response, name: &str| {
        res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    };
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&res, "cache-control"), "no-cache");
    assert!(header(&res, "content-security-policy").contains("script-src 'self'"));
    let index_etag = header(&res, "etag");
    assert!(index_etag.starts_with('"') && index_etag.len() > 8, "{index_etag}");
    let html = res.text().await.unwrap();
    assert!(html.contains("<div id=\"app\""), "{html}");
    assert!(html.contains("AlephAuto"));
    let asset_url = |name: &str| {
        let start = html.find(&format!("/assets/{name}?v=")).unwrap_or_else(|| panic!("{name} in {html}"));
        let end = start + html[start..].find('"').unwrap();
        html[start..end].to_string()
    };
    let (js_url, css_url) = (asset_url("app.js"), asset_url("app.css"));

    // Revalidation with the ETag gets a 304 without a body.
    let res = server.http.get(format!("{}/", server.url)).header("if-none-match", &index_etag).send().await.unwrap();
    assert_eq!(res.status(), 304);
    assert!(res.bytes().await.unwrap().is_empty());

    for (url, plain, ty, needle) in [
        (&js_url, "/assets/app.js", "text/javascript; charset=utf-8", "WebSocket"),
        (&css_url, "/assets/app.css", "text/css; charset=utf-8", ".pill"),
    ] {
        // The hashed URL (what the page uses) may be cached for good...
        let res = get(url).await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        assert_eq!(header(&res, "content-type"), ty);
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
        assert!(header(&res, "cache-control").contains("immutable"), "{url}");
        let etag = header(&res, "etag");
        assert!(res.text().await.unwrap().contains(needle), "{url}");
        // ...the bare URL must be revalidated, and revalidates to 304.
        let res = get(plain).await.unwrap();
        assert_eq!(header(&res, "cache-control"), "no-cache");
        assert_eq!(header(&res, "etag"), etag);
        let res =
            server.http.get(format!("{}{plain}", server.url)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(res.status(), 304, "{plain}");
    }
    let res = get("/assets/favicon.svg").await.unwrap();
    assert_eq!(header(&res, "content-type"), "image/svg+xml");
    // Unknown assets are the API's JSON 404, not the page.
    let (status, body) = server.get("/assets/nope.js").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "NOT_FOUND");
}

#[tokio::test]
async fn with_an_api_key_the_page_is_public_but_actions_need_the_key() {
    let server = Server::start_with(&fixtures(), API_KEY_CONFIG);
    let res = server.http.get(format!("{}/", server.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("id=\"app\""));
    let res = server.http.get(format!("{}/assets/app.js", server.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (status, _) = server.get("/api/pipelines").await;
    assert_eq!(status, 200);

    let trigger = |key: Option<(&'static str, &'static str)>| {
        let mut req = server
            .http
            .post(format!("{}/api/pipelines/noop/trigger", server.url))
            .header("content-type", "application/json")
            .body("{}");
        if let Some((name, value)) = key {
            req = req.header(name, value);
        }
        req.send()
    };
    let res = trigger(None).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "UNAUTHORIZED");
    let res = trigger(Some(("x-api-key", "wrong"))).await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "FORBIDDEN");
    // What the dashboard sends.
    let res = trigger(Some(("x-api-key", "k"))).await.unwrap();
    assert_eq!(res.status(), 201);
    let res = trigger(Some(("authorization", "Bearer k"))).await.unwrap();
    assert_eq!(res.status(), 201);

    // The page's auth probe: a plain GET of /ws answers 401/403 before any upgrade.
    let ws_status = |key: Option<&'static str>| {
        let req = server.http.get(format!("{}/ws", server.url));
        match key {
            Some(k) => req.header("x-api-key", k),
            None => req,
        }
        .send()
    };
    assert_eq!(ws_status(None).await.unwrap().status(), 401);
    assert_eq!(ws_status(Some("nope")).await.unwrap().status(), 403);
    let ok = ws_status(Some("k")).await.unwrap().status();
    assert!(ok != 401 && ok != 403, "{ok}");
    // The key in the query string (where it would land in logs) is not accepted.
    let res = server.http.get(format!("{}/ws?apiKey=k", server.url)).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

// ------------------------------------------------------------------ browser

#[tokio::test]
async fn a_browser_triggers_a_job_from_the_generated_form_and_watches_it_complete_live() {
    let Some(mut browser) = Browser::launch().await else { return };
    let server = Server::start(&fixtures());
    // The login URL the server printed: the generated key rides in the fragment.
    assert!(server.dashboard_url.contains("/#key="), "{}", server.dashboard_url);
    browser.goto(&server.dashboard_url).await;
    browser.wait_for("document.querySelector('[data-trigger=\"echo\"]:not([disabled])') !== null", 60).await;
    browser.wait_for("document.getElementById('conn').dataset.state === 'live'", 30).await;
    // Taken into this tab's storage and out of the address bar.
    let kept = browser
        .eval("({ hash: location.hash, key: sessionStorage.getItem('alephauto.apiKey'), local: localStorage.length })")
        .await;
    assert_eq!(kept, json!({"hash": "", "key": server.api_key.clone().unwrap(), "local": 0}));

    // The form is generated from the echo worker's schema.
    browser.eval("document.querySelector('[data-trigger=\"echo\"]').click()").await;
    browser.wait_for("document.getElementById('trigger-submit') !== null", 10).await;
    let form = browser
        .eval(
            r#"(() => {
            const q = (id) => document.getElementById('param-echo-' + id);
            const field = (id) => document.querySelector('[data-field="' + id + '"]');
            return {
              steps: [q('steps').type, q('steps').value, q('steps').min, q('steps').max],
              sleepMs: [q('sleepMs').type, q('sleepMs').value],
              failWith: [q('failWith').tagName, [...q('failWith').options].map(o => o.textContent)],
              message: [q('message').tagName, q('message').type],
              inputDirBadge: field('inputDir').querySelector('.path-badge')?.textContent ?? null,
              print: q('print').value,
            };
        })()"#,
        )
        .await;
    assert_eq!(form["steps"], json!(["number", "0", "0", "100"]), "{form}");
    assert_eq!(form["sleepMs"], json!(["number", "0"]), "{form}");
    assert_eq!(
        form["failWith"],
        json!(["SELECT", ["— not set —", "failed", "retryable", "invalid", "retryable-once"]])
    );
    assert_eq!(form["message"], json!(["INPUT", "text"]));
    assert_eq!(form["inputDirBadge"], "path · read");
    assert_eq!(form["print"], "0");
    browser.screenshot(&artifacts_dir().join("dashboard-trigger-form.png")).await;

    browser
        .eval(
            r#"(() => {
            const set = (id, v) => { const el = document.getElementById('param-echo-' + id); el.value = v;
              el.dispatchEvent(new Event('input', {bubbles: true})); };
            set('steps', '5'); set('sleepMs', '1500'); set('message', 'from the <b>browser</b>');
            document.getElementById('trigger-submit').click();
        })()"#,
        )
        .await;
    let id = browser.wait_for("document.querySelector('tr[data-job-id^=\"echo-manual-\"]')?.dataset.jobId", 20).await;
    let id = id.as_str().expect("job id").to_string();
    assert!(browser.eval("document.getElementById('modal-overlay').hidden").await.as_bool().unwrap(), "form closed");

    // Watch the row: the bar moves through intermediate values, then the job completes.
    let artifacts = artifacts_dir();
    let row = format!("document.querySelector('#active-jobs tr[data-job-id=\"{id}\"]')");
    let done = format!("document.querySelector('#recent-jobs tr[data-job-id=\"{id}\"] .pill')?.dataset.status");
    let mut seen = Vec::new();
    let mut shot_running = false;
    let start = Instant::now();
    loop {
        let v = browser
            .eval(&format!(
                "(() => {{ const r = {row}; return {{ done: {done} ?? null, pct: r ? Number(r.querySelector('[role=progressbar]').getAttribute('aria-valuenow')) : null, \
                 status: r?.querySelector('.pill')?.dataset.status ?? null }}; }})()"
            ))
            .await;
        if let Some(p) = v["pct"].as_u64() {
            if seen.last() != Some(&p) {
                seen.push(p);
            }
            if (20..100).contains(&p) && !shot_running {
                browser.screenshot(&artifacts.join("dashboard-running.png")).await;
                shot_running = true;
            }
        }
        if v["done"] == "completed" {
            break;
        }
        assert!(v["done"].is_null(), "job ended as {v}");
        assert!(start.elapsed() < Duration::from_secs(90), "job never completed in the page: {v}, seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    assert!(seen.iter().any(|p| (1..100).contains(p)), "live progress was shown: {seen:?}");
    // The completion came over the WebSocket feed.
    let feed = browser
        .eval(&format!(
            "[...document.querySelectorAll('#activity li[data-source=\"ws\"][data-job-id=\"{id}\"]')].map(li => li.dataset.event + ' ' + li.querySelector('.msg').textContent)"
        ))
        .await;
    let feed: Vec<&str> = feed.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(feed.iter().any(|l| l.starts_with("job:completed") && l.ends_with(&format!("{id} completed"))), "{feed:?}");
    assert!(feed.iter().any(|l| l.starts_with("job:progress")), "{feed:?}");
    let job = server.wait_job(&id, Duration::from_secs(10)).await;
    assert_eq!(job["result"]["echo"]["steps"], 5, "{job}");
    assert_eq!(job["data"]["message"], "from the <b>browser</b>");
    // Pipeline counts follow.
    browser
        .wait_for("document.querySelector('[data-pipeline-id=\"echo\"] .count-completed b')?.textContent === '1'", 10)
        .await;
    browser.screenshot(&artifacts.join("dashboard.png")).await;

    // Job detail: result, logs, and text shown as text.
    browser.eval(&format!("document.querySelector('#recent-jobs tr[data-job-id=\"{id}\"]').click()")).await;
    browser.wait_for("document.getElementById('job-logs')?.textContent.includes('echo starting') ?? false", 20).await;
    let detail = browser
        .eval(
            "({ result: document.getElementById('job-result').textContent, \
               status: document.querySelector('#drawer .pill').dataset.status, \
               params: document.querySelector('#drawer-body').textContent, \
               injected: document.querySelectorAll('#drawer b').length, \
               digest: document.getElementById('job-digest')?.textContent, \
               digestTitle: document.getElementById('job-digest')?.title, \
               hash: location.hash })",
        )
        .await;
    assert_eq!(detail["status"], "completed");
    assert!(detail["result"].as_str().unwrap().contains("\"steps\": 5"), "{detail}");
    assert!(detail["params"].as_str().unwrap().contains("from the <b>browser</b>"), "{detail}");
    assert_eq!(detail["injected"], 0, "markup in data is never rendered");
    // The version the job ran on: the worker's version and its component's digest.
    assert!(detail["params"].as_str().unwrap().contains("Worker version0.1.0"), "{detail}");
    let digest = job["componentDigest"].as_str().expect("digest recorded");
    assert_eq!(detail["digest"].as_str(), Some(format!("sha256:{}", &digest[..12]).as_str()), "{detail}");
    assert_eq!(detail["digestTitle"].as_str(), Some(format!("sha256:{digest}").as_str()), "{detail}");
    assert_eq!(detail["hash"], format!("#/job/{id}"));
    browser.screenshot(&artifacts.join("dashboard-job-detail.png")).await;
    browser.eval("document.getElementById('drawer-close').click()").await;

    // A failed job shows its error and a Retry button; a running one can be cancelled.
    let failed = server.trigger_ok("echo", json!({"failWith": "failed", "message": "boom <i>x</i>"})).await;
    let sel = format!("#recent-jobs tr[data-job-id=\"{failed}\"]");
    browser.wait_for(&format!("document.querySelector('{sel} .pill')?.dataset.status === 'failed'"), 30).await;
    let outcome = browser.eval(&format!("document.querySelector('{sel} .outcome').textContent")).await;
    assert_eq!(outcome, "boom <i>x</i>");
    browser.eval(&format!("document.querySelector('{sel} [data-retry]').click()")).await;
    let retried =
        browser.wait_for("document.querySelector('tr[data-job-id^=\"echo-retry-\"]')?.dataset.jobId ?? null", 20).await;
    let retried = server.wait_job(retried.as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(retried["retriedFrom"], failed.as_str());

    let long = server.trigger_ok("echo", json!({"sleepMs": 60000, "steps": 60})).await;
    let sel = format!("#active-jobs tr[data-job-id=\"{long}\"]");
    browser.wait_for(&format!("document.querySelector('{sel} .pill')?.dataset.status === 'running'"), 30).await;
    browser.eval(&format!("window.confirm = () => true; document.querySelector('{sel} [data-cancel]').click()")).await;
    browser
        .wait_for(
            &format!("document.querySelector('#recent-jobs tr[data-job-id=\"{long}\"] .pill')?.dataset.status === 'cancelled'"),
            30,
        )
        .await;
    assert_eq!(server.wait_job(&long, Duration::from_secs(10)).await["status"], "cancelled");

    // The server restarts: the page sees the feed drop, backs off, reconnects and
    // follows new jobs again.
    browser
        .eval(
            "window.__conn = []; new MutationObserver(() => window.__conn.push(document.getElementById('conn').dataset.state))\
             .observe(document.getElementById('conn'), {attributes: true})",
        )
        .await;
    let mut server = server;
    server.restart_same_port();
    browser.wait_for("window.__conn.includes('reconnecting') && window.__conn.at(-1) === 'live'", 60).await;
    let after = server.trigger_ok("noop", json!({})).await;
    browser
        .wait_for(
            &format!("document.querySelector('#recent-jobs tr[data-job-id=\"{after}\"] .pill')?.dataset.status === 'completed'"),
            30,
        )
        .await;
    browser
        .wait_for(
            &format!("document.querySelector('#activity li[data-source=\"ws\"][data-job-id=\"{after}\"]') !== null"),
            10,
        )
        .await;

    browser.assert_no_page_errors();
}

#[tokio::test]
async fn with_an_api_key_the_browser_asks_once_stores_it_and_re_asks_when_rejected() {
    let Some(mut browser) = Browser::launch().await else { return };
    let server = Server::start_with(&fixtures(), API_KEY_CONFIG);
    browser.goto(&server.url).await;
    // The live feed is refused without a key, so the page asks for one.
    browser.wait_for("document.getElementById('api-key-input') !== null", 30).await;
    assert_eq!(browser.eval("document.getElementById('conn').dataset.state").await, "auth");
    browser.screenshot(&artifacts_dir().join("dashboard-api-key.png")).await;
    browser
        .eval("document.getElementById('api-key-input').value = 'k'; document.getElementById('api-key-save').click()")
        .await;
    browser.wait_for("document.getElementById('conn').dataset.state === 'live'", 30).await;
    assert_eq!(browser.eval("sessionStorage.getItem('alephauto.apiKey')").await, "k");

    // Mutating calls carry it.
    browser.wait_for("document.querySelector('[data-trigger=\"noop\"]:not([disabled])') !== null", 60).await;
    browser.eval("document.querySelector('[data-trigger=\"noop\"]').click()").await;
    browser.wait_for("document.getElementById('trigger-submit') !== null", 10).await;
    browser.eval("document.getElementById('trigger-submit').click()").await;
    let id = browser
        .wait_for("document.querySelector('tr[data-job-id^=\"noop-manual-\"]')?.dataset.jobId ?? null", 20)
        .await;
    let job = server.wait_job(id.as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(job["status"], "completed");

    // A wrong stored key: the trigger gets 403 and the page asks again, then succeeds.
    browser.eval("sessionStorage.setItem('alephauto.apiKey', 'wrong')").await;
    browser.eval("document.querySelector('[data-trigger=\"noop\"]').click()").await;
    browser.wait_for("document.getElementById('trigger-submit') !== null", 10).await;
    browser.eval("document.getElementById('trigger-submit').click()").await;
    browser.wait_for("document.getElementById('api-key-input') !== null", 20).await;
    let prompt = browser.eval("document.getElementById('key-modal').textContent").await;
    assert!(prompt.as_str().unwrap().contains("rejected"), "{prompt}");
    browser
        .eval("document.getElementById('api-key-input').value = 'k'; document.getElementById('api-key-save').click()")
        .await;
    browser
        .wait_for(
            "document.querySelectorAll('tr[data-job-id^=\"noop-manual-\"]').length === 2 && sessionStorage.getItem('alephauto.apiKey') === 'k'",
            20,
        )
        .await;
    browser.assert_no_page_errors();
}

/// Every kind of field the form generator knows, from a schema the fixtures do not
/// have: the page's `fetch` is wrapped to add a synthetic pipeline and to capture
/// what its trigger would send (answered with a server-style 400).
#[tokio::test]
async fn the_trigger_form_covers_every_schema_field_kind() {
    let Some(mut browser) = Browser::launch().await else { return };
    let server = Server::start(&fixtures());
    let schema = json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "title": "Name", "description": "Who to greet"},
            "count": {"type": "integer", "default": 3, "minimum": 1},
            "ratio": {"type": "number", "default": 0.5},
            "dryRun": {"type": "boolean", "default": true},
            "verbose": {"type": "boolean"},
            "mode": {"enum": ["fast", "slow"], "default": "slow"},
            "tags": {"type": "array", "items": {"type": "string"}, "default": ["a", "b"]},
            "repo": {"type": "string", "x-alephauto-path": "write"},
            "options": {"type": "object", "default": {"x": 1}},
            "pairs": {"type": "array", "items": {"type": "array"}},
            "level": {"$ref": "#/$defs/level"},
            "maybe": {"type": ["integer", "null"]}
        },
        "$defs": {"level": {"enum": [1, 2, 3], "default": 2}}
    });
    let init = r#"(() => {
        const schema = SCHEMA;
        const real = window.fetch.bind(window);
        const json = (v, status) => new Response(JSON.stringify(v), {status, headers: {'content-type': 'application/json'}});
        window.__triggered = [];
        window.fetch = async (url, opts) => {
          const u = String(url);
          if (u === '/api/pipelines/kitchen/trigger') {
            window.__triggered.push(JSON.parse(opts.body));
            return json({error: "Invalid parameters: 'count' must be at most 2", code: 'INVALID_PARAMETERS'}, 400);
          }
          const res = await real(url, opts);
          if (u !== '/api/pipelines') return res;
          const data = await res.json();
          data.pipelines.push({id: 'kitchen', name: 'Kitchen sink', description: 'Every field kind', version: '1.0.0',
            status: 'idle', workerLoaded: true, queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0,
            lastRun: null, paramsSchema: schema, gitWorkflow: true});
          return json(data, 200);
        };
      })()"#
        .replace("SCHEMA", &schema.to_string());
    browser.add_init_script(&init).await;
    browser.goto(&server.dashboard_url).await;
    browser.wait_for("document.querySelector('[data-trigger=\"kitchen\"]:not([disabled])') !== null", 60).await;
    browser.eval("document.querySelector('[data-trigger=\"kitchen\"]').click()").await;
    browser.wait_for("document.getElementById('trigger-submit') !== null", 10).await;
    let controls = browser
        .eval(
            r#"(() => {
            const out = {};
            for (const el of document.querySelectorAll('#modal [data-param]')) {
              if (el.dataset.param === '__raw') continue;
              out[el.dataset.param] = el.type === 'checkbox' ? ['checkbox', el.checked]
                : el.tagName === 'SELECT' ? ['select', el.options[el.selectedIndex].textContent, [...el.options].map(o => o.textContent)]
                : [el.tagName === 'TEXTAREA' ? 'textarea' : el.type, el.value];
            }
            out.repoBadge = document.querySelector('[data-field="repo"] .path-badge')?.textContent ?? null;
            out.required = [...document.querySelectorAll('#modal .req')].map(r => r.closest('[data-field]').dataset.field);
            return out;
        })()"#,
        )
        .await;
    let expect = json!({
        "name": ["text", ""],
        "count": ["number", "3"],
        "ratio": ["number", "0.5"],
        "dryRun": ["checkbox", true],
        "verbose": ["select", "— not set —", ["— not set —", "true", "false"]],
        "mode": ["select", "slow", ["— not set —", "fast", "slow"]],
        "tags": ["textarea", "a\nb"],
        "repo": ["text", ""],
        "options": ["textarea", "{\n  \"x\": 1\n}"],
        "pairs": ["textarea", ""],
        "level": ["select", "2", ["— not set —", "1", "2", "3"]],
        "maybe": ["number", ""],
        "repoBadge": "path · write",
        "required": ["name"],
    });
    assert_eq!(controls, expect);
    browser.screenshot(&artifacts_dir().join("dashboard-form-kinds.png")).await;

    // Client-side checks: required field, malformed JSON. Nothing is sent.
    let set = |field: &str, value: &str| {
        format!(
            "(() => {{ const el = document.querySelector('#modal [data-param=\"{field}\"]'); el.value = {}; }})()",
            json!(value)
        )
    };
    browser.eval(&set("options", "{bad")).await;
    browser.eval("document.getElementById('trigger-submit').click()").await;
    let errors = browser
        .eval("[...document.querySelectorAll('#modal .field.invalid')].map(f => f.dataset.field + ': ' + f.querySelector('.field-error').textContent)")
        .await;
    let errors: Vec<&str> = errors.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0], "name: Name is required");
    assert!(errors[1].starts_with("options: options is not valid JSON"), "{errors:?}");
    assert_eq!(browser.eval("window.__triggered.length").await, 0);

    // Typed values are sent; empty optional fields are left out.
    browser.eval(&set("name", "<img src=x onerror=alert(1)>")).await;
    browser.eval(&set("options", "{\"y\": [2]}")).await;
    browser.eval(&set("verbose", "true")).await;
    browser.eval(&set("tags", " one \n\n two ")).await;
    browser.eval("document.getElementById('trigger-submit').click()").await;
    let sent = browser.wait_for("window.__triggered[0] ?? null", 10).await;
    assert_eq!(
        sent,
        json!({"parameters": {"name": "<img src=x onerror=alert(1)>", "count": 3, "ratio": 0.5, "dryRun": true,
            "verbose": true, "mode": "slow", "tags": ["one", "two"], "options": {"y": [2]}, "level": 2}})
    );
    // The server's 400 is shown, and the field it names is marked.
    browser.wait_for("!document.getElementById('trigger-error').hidden", 10).await;
    let shown = browser
        .eval("({ error: document.getElementById('trigger-error').textContent, invalid: [...document.querySelectorAll('#modal .field.invalid')].map(f => f.dataset.field), imgs: document.querySelectorAll('img').length })")
        .await;
    assert_eq!(shown["error"], "Invalid parameters: 'count' must be at most 2 (400 INVALID_PARAMETERS)");
    assert_eq!(shown["invalid"], json!(["count"]));
    assert_eq!(shown["imgs"], 1, "only the logo; nothing injected");
    browser.assert_no_page_errors();
}

/// A duplicated block whose string holds the script a hostile repository would plant.
const PLANTED: &str = "function render(rows) {\n  const head = \"<script>document.title='PWNED';parent.document.body.dataset.pwned='1'</script>\";\n  let out = head;\n  for (const r of rows) {\n    out += '<td>' + r.name + '</td>';\n  }\n  return out;\n}\n";

/// A real worker's HTML report (duplicate-detection over a repository with a planted script and
/// a hostile file name) shown in the job drawer's frame: its text is there and visible, the
/// planted markup is text (no script or image element exists), and nothing touched the page.
#[tokio::test]
async fn a_workers_html_report_renders_in_the_sandboxed_frame_and_planted_markup_stays_text() {
    let Some(mut browser) = Browser::launch().await else { return };
    let server = Server::start(&crate::pipelines::config(&["duplicate-detection"]));
    let repo = server.dir.join("code/shop");
    crate::support::write_tree(&repo, &[("a.js", PLANTED), ("<img src=x onerror=alert(1)>.js", PLANTED)]);
    let job = server
        .run(
            "duplicate-detection",
            json!({"repositoryPath": repo.display().to_string(), "minTokens": 20, "minLines": 4}),
        )
        .await;
    assert_eq!(job["status"], "completed", "{job}\n{}", server.log());
    let id = job["id"].as_str().unwrap();

    browser.goto(&server.dashboard_url).await;
    browser.wait_for("document.getElementById('conn').dataset.state === 'live'", 60).await;
    let title = browser.eval("document.title").await;
    browser.eval(&format!("location.hash = '#/job/{id}'")).await;
    browser.wait_for("document.querySelector('[data-preview=\"duplicate-report.html\"]') !== null", 30).await;
    browser.eval("document.querySelector('[data-preview=\"duplicate-report.html\"]').click()").await;
    let frame = browser
        .wait_for(
            "(() => { const f = document.querySelector('iframe.artifact-frame'); \
              return f ? { sandbox: f.getAttribute('sandbox'), src: f.getAttribute('src'), \
              height: f.getBoundingClientRect().height } : null })()",
            10,
        )
        .await;
    assert_eq!(frame["sandbox"], "", "a frame with no permissions: {frame}");
    assert!(frame["src"].as_str().unwrap().ends_with(&format!("/api/jobs/{id}/artifacts/duplicate-report.html")));
    assert!(frame["height"].as_f64().unwrap() > 100.0, "the frame is shown: {frame}");

    // Inside the frame (read over DevTools: the page itself cannot reach an opaque origin).
    let probe = "(() => { const h = document.querySelector('h1'); const code = document.querySelector('.side pre'); \
        return h && code ? { h1: h.textContent, visible: h.getBoundingClientRect().height > 0 && \
        getComputedStyle(h).visibility === 'visible', code: code.textContent, \
        loc: [...document.querySelectorAll('.side figcaption')].map(f => f.textContent).join(' '), \
        scripts: document.querySelectorAll('script').length, images: document.querySelectorAll('img').length, \
        title: document.title, origin: window.origin, cards: document.querySelectorAll('.card').length } : null })()";
    let deadline = Instant::now() + Duration::from_secs(20);
    let inside = loop {
        match browser.frame_eval("/artifacts/duplicate-report.html", probe).await {
            Some(v) if !v.is_null() => break v,
            seen => assert!(Instant::now() < deadline, "the report never rendered in its frame: {seen:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(inside["h1"], "Duplicate code report", "{inside}");
    assert_eq!(inside["visible"], true, "{inside}");
    assert!(inside["cards"].as_u64().unwrap() >= 8, "the totals are shown: {inside}");
    let code = inside["code"].as_str().unwrap();
    assert!(
        code.contains("<script>document.title='PWNED';parent.document.body.dataset.pwned='1'</script>"),
        "{inside}"
    );
    assert!(inside["loc"].as_str().unwrap().contains("<img src=x onerror=alert(1)>.js:"), "{inside}");
    assert_eq!((inside["scripts"].as_u64(), inside["images"].as_u64()), (Some(0), Some(0)), "markup became elements");
    assert_eq!(inside["title"], "Duplicate code report", "the planted script ran: {inside}");
    assert_eq!(inside["origin"], "null", "the frame has an opaque origin");
    assert_eq!(browser.eval("document.body.dataset.pwned ?? 'no'").await, "no");
    assert_eq!(browser.eval("document.title").await, title);
    browser.eval("document.querySelector('iframe.artifact-frame').scrollIntoView()").await;
    browser.screenshot(&artifacts_dir().join("dashboard-report-frame.png")).await;
    browser.assert_no_page_errors();
}

#[tokio::test]
async fn the_runs_panel_shows_a_runs_progress_and_jobs_and_cancels_it() {
    let Some(mut browser) = Browser::launch().await else { return };
    let server =
        Server::start(&format!("{}[inventories.three]\npaths = [\"ROOT/a\", \"ROOT/b\", \"ROOT/c\"]\n", fixtures()));
    for d in ["a", "b", "c"] {
        std::fs::create_dir_all(server.dir.join(d)).unwrap();
    }
    let (status, run) = server
        .post(
            "/api/pipelines/echo/runs",
            json!({"inventory": "three", "pathParameter": "inputDir", "parameters": {"sleepMs": 30000, "steps": 30}}),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let id = run["run"]["id"].as_str().unwrap().to_string();
    browser.goto(&server.dashboard_url).await;
    let row = format!("tr[data-run-id=\"{id}\"]");
    // echo runs two at once: the run is running, one of three jobs waits.
    browser.wait_for(&format!("document.querySelector('{row}')?.dataset.runStatus === 'running'"), 60).await;
    browser
        .wait_for(&format!("document.querySelector('{row} [data-run-progress]')?.textContent.includes('of 3')"), 10)
        .await;
    browser.eval(&format!("document.querySelector('{row} button').click()")).await;
    let detail = format!("tr[data-run-detail=\"{id}\"]");
    let statuses = browser
        .wait_for(
            &format!(
                "(() => {{ const s = [...document.querySelectorAll('{detail} tbody .pill')].map(p => p.dataset.status).sort().join(); \
                 return s === 'queued,running,running' ? s : null; }})()"
            ),
            30,
        )
        .await;
    assert_eq!(statuses, "queued,running,running");
    let links =
        browser.eval(&format!("document.querySelectorAll('{detail} a[href^=\"#/job/echo-run-\"]').length")).await;
    assert_eq!(links, 3);
    browser
        .eval(&format!("window.confirm = () => true; document.querySelector('{row} [data-cancel-run]').click()"))
        .await;
    browser.wait_for(&format!("document.querySelector('{row}')?.dataset.runStatus === 'cancelled'"), 30).await;
    browser
        .wait_for(
            &format!(
                "[...document.querySelectorAll('{detail} tbody .pill')].every(p => p.dataset.status === 'cancelled')"
            ),
            30,
        )
        .await;
    assert!(browser.eval(&format!("document.querySelector('{row} [data-cancel-run]') === null")).await == json!(true));
    let (_, after) = server.get(&format!("/api/runs/{id}")).await;
    assert_eq!(after["run"]["counts"]["cancelled"], 3, "{after}");
    browser.screenshot(&artifacts_dir().join("dashboard-runs.png")).await;
}

#[tokio::test]
async fn the_schedules_panel_shows_next_fire_last_run_and_outcome_and_pauses_resumes_and_runs() {
    let Some(mut browser) = Browser::launch().await else { return };
    let schedule =
        "[[pipelines.echo.schedules]]\nid = \"nightly\"\ncron = \"0 2 * * *\"\ntimezone = \"Europe/Berlin\"\n";
    let config = [pipeline("echo", "fixture_echo", &format!("roots = [\"ROOT\"]\n{schedule}"))].concat();
    let server = Server::start(&config);
    browser.goto(&server.dashboard_url).await;
    let row = "#schedules-table tr[data-schedule=\"nightly\"]";
    browser.wait_for(&format!("document.querySelector('{row} .sched-next time') !== null"), 60).await;
    browser.wait_for("document.getElementById('conn').dataset.state === 'live'", 30).await;
    let (_, api) = server.get("/api/schedules/nightly").await;
    let shown =
        browser.eval(&format!("document.querySelector('{row} .sched-next time').getAttribute('datetime')")).await;
    assert_eq!(shown, api["nextFire"], "{api}");
    assert_eq!(browser.eval(&format!("document.querySelector('{row} .sched-outcome').textContent")).await, "—");

    browser.eval(&format!("document.querySelector('{row} [data-pause]').click()")).await;
    browser.wait_for(&format!("document.querySelector('{row} [data-resume]') !== null"), 20).await;
    browser
        .wait_for(&format!("document.querySelector('{row} .sched-next .pill')?.dataset.status === 'paused'"), 10)
        .await;
    assert_eq!(server.get("/api/schedules/nightly").await.1["paused"], true);
    browser.eval(&format!("document.querySelector('{row} [data-resume]').click()")).await;
    browser.wait_for(&format!("document.querySelector('{row} [data-pause]') !== null"), 20).await;
    assert_eq!(server.get("/api/schedules/nightly").await.1["paused"], false);

    // Run now: the last run links to the job and the outcome follows it live to completed.
    browser.eval(&format!("document.querySelector('{row} [data-run-now]').click()")).await;
    browser
        .wait_for(&format!("document.querySelector('{row} .sched-outcome .pill')?.dataset.status === 'completed'"), 60)
        .await;
    let (_, api) = server.get("/api/schedules/nightly").await;
    let job = api["lastJobId"].as_str().unwrap().to_string();
    let href = browser.eval(&format!("document.querySelector('{row} .sched-last a').getAttribute('href')")).await;
    assert_eq!(href, format!("#/job/{job}"));
    let (_, j) = server.get(&format!("/api/jobs/{job}")).await;
    assert_eq!(j["data"]["triggeredBy"], "schedule:nightly", "{j}");
    browser.screenshot(&artifacts_dir().join("dashboard-schedules.png")).await;
    browser.assert_no_page_errors();
}
