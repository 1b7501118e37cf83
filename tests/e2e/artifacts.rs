//! Artifacts and reports over HTTP: a job's output files listed and downloaded (with ranges),
//! links a guest planted never listed nor followed, traversal refused, reports across jobs.

use serde_json::json;

use crate::cdp::Browser;
use crate::support::{Server, pipeline};

/// Downloads `path` with optional extra headers; returns status, headers and body bytes.
async fn fetch(server: &Server, path: &str, range: Option<&str>) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = server.http.get(format!("{}{path}", server.url));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let res = req.send().await.expect("GET");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn a_jobs_files_are_listed_and_served_without_following_links() {
    let server = Server::start(&pipeline("probe", "fixture_data_probe", "roots = [\"ROOT\"]"));
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "OUTSIDE-SECRET").unwrap();
    // The guest writes report.txt and plants links: outward ones (removed after the job) and
    // `latest -> report.txt` (inside, so it stays on disk).
    let job = server.run("probe", json!({"plant": secret.display().to_string()})).await;
    assert_eq!(job["status"], "completed", "{job}\n{}", server.log());
    let id = job["id"].as_str().unwrap();
    let out = server.data_dir().join("outputs").join(id);
    // A link planted after the tidy (as a concurrent attempt could) must not be served either.
    std::os::unix::fs::symlink(&secret, out.join("late-link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), out.join("late-dir")).unwrap();

    let (status, body) = server.get(&format!("/api/jobs/{id}/artifacts")).await;
    assert_eq!(status, 200, "{body}");
    let paths: Vec<&str> = body["artifacts"].as_array().unwrap().iter().map(|a| a["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["report.txt"], "only the regular file is listed: {body}");
    assert_eq!(body["artifacts"][0]["size"], 6);
    assert_eq!(body["artifacts"][0]["mediaType"], "text/plain; charset=utf-8");
    assert_eq!(body["total"], 1);

    let (status, headers, bytes) = fetch(&server, &format!("/api/jobs/{id}/artifacts/report.txt"), None).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, b"report");
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().unwrap().starts_with("sandbox"), "{headers:?}");
    assert_eq!(headers["accept-ranges"], "bytes");

    for link in ["latest", "late-link", "late-dir/secret.txt", "etc/passwd", "outside", "up/etc/passwd"] {
        let (status, _, bytes) = fetch(&server, &format!("/api/jobs/{id}/artifacts/{link}"), None).await;
        assert_eq!(status, 404, "{link} was served: {:?}", String::from_utf8_lossy(&bytes));
        assert!(!String::from_utf8_lossy(&bytes).contains("OUTSIDE-SECRET"));
    }
    // Traversal, however it is spelled, is a 400 naming the path problem (or never reaches a file).
    for attempt in ["..%2F..%2Fapi-key", "%2e%2e/%2e%2e/api-key", "sub/..%2F..%2F..%2Fapi-key", "%2Fetc%2Fpasswd"] {
        let (status, _, bytes) = fetch(&server, &format!("/api/jobs/{id}/artifacts/{attempt}"), None).await;
        let text = String::from_utf8_lossy(&bytes);
        assert!(status == 400 || status == 404, "{attempt}: {status} {text}");
        assert!(!text.contains("OUTSIDE") && !text.contains("alephauto"), "{attempt} leaked: {text}");
        if status == 400 {
            assert!(text.contains("INVALID_ARTIFACT_PATH"), "{text}");
        }
    }

    // Ranges: one range is a 206 with Content-Range; a suffix range; one beyond the end is a 416.
    let (status, headers, bytes) =
        fetch(&server, &format!("/api/jobs/{id}/artifacts/report.txt"), Some("bytes=1-3")).await;
    assert_eq!((status, bytes.as_slice()), (206, b"epo".as_slice()));
    assert_eq!(headers["content-range"], "bytes 1-3/6");
    let (status, _, bytes) = fetch(&server, &format!("/api/jobs/{id}/artifacts/report.txt"), Some("bytes=-2")).await;
    assert_eq!((status, bytes.as_slice()), (206, b"rt".as_slice()));
    let (status, headers, bytes) =
        fetch(&server, &format!("/api/jobs/{id}/artifacts/report.txt"), Some("bytes=10-")).await;
    assert_eq!(status, 416, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["content-range"], "bytes */6");

    // Unknown job: 404; a malformed id: 400; a job that wrote nothing: an empty list.
    assert_eq!(server.get("/api/jobs/nope/artifacts").await.0, 404);
    assert_eq!(server.get("/api/jobs/bad%20id/artifacts").await.0, 400);
    let quiet = server.run("probe", json!({})).await;
    std::fs::remove_dir_all(server.data_dir().join("outputs").join(quiet["id"].as_str().unwrap())).ok();
    let (status, body) = server.get(&format!("/api/jobs/{}/artifacts", quiet["id"].as_str().unwrap())).await;
    assert_eq!((status, body["total"].as_u64()), (200, Some(0)), "{body}");
}

#[tokio::test]
async fn reports_across_jobs_are_listed_newest_first_and_filtered() {
    let server = Server::start(&pipeline("probe", "fixture_data_probe", "roots = [\"ROOT\"]"));
    let first = server.run("probe", json!({})).await;
    let second = server.run("probe", json!({})).await;
    for job in [&first, &second] {
        assert_eq!(job["status"], "completed", "{job}");
    }
    let (status, body) = server.get("/api/reports?pipelineId=probe").await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["reports"].as_array().unwrap().iter().map(|r| r["jobId"].as_str().unwrap()).collect();
    assert_eq!(ids, [second["id"].as_str().unwrap(), first["id"].as_str().unwrap()], "{body}");
    assert_eq!(body["reports"][0]["reports"][0]["path"], "report.txt");

    // Paging by cursor: one per page, then the other, then the end.
    let (_, page) = server.get("/api/reports?limit=1").await;
    assert_eq!(page["reports"][0]["jobId"], second["id"]);
    let cursor = page["nextCursor"].as_str().expect("a next cursor").to_string();
    let (_, page) = server.get(&format!("/api/reports?limit=1&cursor={cursor}")).await;
    assert_eq!(page["reports"][0]["jobId"], first["id"], "{page}");

    let (_, body) = server.get("/api/reports?since=2999-01-01T00:00:00Z").await;
    assert_eq!(body["reports"].as_array().unwrap().len(), 0, "{body}");
    let (_, body) = server.get("/api/reports?repository=/nowhere").await;
    assert_eq!(body["reports"].as_array().unwrap().len(), 0, "{body}");
    let (status, body) = server.get("/api/reports?since=yesterday").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("since"), "{body}");
    assert_eq!(server.get("/api/reports?pipelineId=nope").await.0, 400);
}

#[tokio::test]
async fn a_guests_html_report_renders_in_the_dashboard_without_running_its_script() {
    let Some(mut browser) = Browser::launch().await else { return };
    let server = Server::start(&pipeline("probe", "fixture_data_probe", "roots = [\"ROOT\"]"));
    // A report that tries what a hostile one would: script, the parent page, the API. (No double
    // quotes: the fixture's parameter reader is minimal.)
    let html = "<!doctype html><title>report</title><h1 id='t'>Duplicate groups: 3</h1>\
        <script>document.title='SCRIPT-RAN';try{parent.document.body.dataset.pwned='1'}catch(e){}\
        fetch('/api/jobs').then(()=>{document.title='FETCHED'})</script>";
    let job = server.run("probe", json!({"html": html})).await;
    assert_eq!(job["status"], "completed", "{job}");
    let id = job["id"].as_str().unwrap();

    browser.goto(&server.dashboard_url).await;
    // The Reports view lists the newest report per pipeline.
    browser
        .wait_for("document.querySelector('#reports-by-pipeline')?.textContent.includes('report.html') ?? false", 90)
        .await;
    // The job's drawer lists its artifacts and previews the HTML in a frame with no permissions.
    browser.eval(&format!("location.hash = '#/job/{id}'")).await;
    browser.wait_for("document.querySelector('[data-preview=\"report.html\"]') !== null", 30).await;
    browser.eval("document.querySelector('[data-preview=\"report.html\"]').click()").await;
    let frame = browser
        .wait_for(
            "(() => { const f = document.querySelector('iframe.artifact-frame'); \
              return f ? { sandbox: f.getAttribute('sandbox'), src: f.getAttribute('src') } : null })()",
            10,
        )
        .await;
    assert_eq!(frame["sandbox"], "", "{frame}");
    assert!(frame["src"].as_str().unwrap().ends_with("/artifacts/report.html"), "{frame}");
    // Give the framed script every chance to run, then check it could not touch the page.
    browser.wait_for("document.querySelector('iframe.artifact-frame')?.contentDocument === null", 10).await;
    assert_eq!(browser.eval("document.body.dataset.pwned ?? 'no'").await, "no");

    // Opened directly, the report renders, in an opaque origin, with its script blocked.
    browser.goto(&format!("{}/api/jobs/{id}/artifacts/report.html", server.url)).await;
    browser.wait_for("document.getElementById('t')?.textContent === 'Duplicate groups: 3'", 10).await;
    assert_eq!(browser.eval("window.origin").await, "null");
    assert_eq!(browser.eval("document.title").await, "report", "the report's script ran");
}

#[tokio::test]
async fn retention_prunes_finished_jobs_with_their_files_and_keeps_the_newest() {
    let pipelines = [
        pipeline("probe", "fixture_data_probe", "roots = [\"ROOT\"]\nretention = { max_jobs = 2 }"),
        // About 1.7 seconds.
        pipeline("aged", "fixture_data_probe", "roots = [\"ROOT\"]\nretention = { max_age_days = 0.00002 }"),
    ]
    .concat();
    let server = Server::start_with(&pipelines, "retention_interval_secs = 1\n");
    let outputs = server.data_dir().join("outputs");
    let mut ids = Vec::new();
    for _ in 0..4 {
        let job = server.run("probe", json!({})).await;
        assert_eq!(job["status"], "completed", "{job}");
        ids.push(job["id"].as_str().unwrap().to_string());
    }
    let aged = server.run("aged", json!({})).await["id"].as_str().unwrap().to_string();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for id in [&ids[0], &ids[1], &aged] {
        while server.get(&format!("/api/jobs/{id}")).await.0 != 404 || outputs.join(id).exists() {
            assert!(std::time::Instant::now() < deadline, "job {id} (row or files) outlived its retention");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(server.get(&format!("/api/jobs/{id}/logs")).await.0 == 404, "logs of {id} remain");
    }
    for id in &ids[2..] {
        assert_eq!(server.get(&format!("/api/jobs/{id}")).await.0, 200, "the newest two are kept");
        let (_, list) = server.get(&format!("/api/jobs/{id}/artifacts")).await;
        assert_eq!(list["total"], 1, "{list}");
    }
    let (_, page) = server.get("/api/jobs?pipelineId=probe").await;
    assert_eq!(page["total"], 2, "counts follow the pruned rows: {page}");
}
