//! The runtime's own data (database, WAL, compiled-code cache, other jobs' outputs) is
//! never reachable from a grant: overlapping configuration is refused at start, path
//! parameters into it get 400 even when a root contains it, a changed cache entry is
//! recompiled rather than loaded, and links planted in an output folder do not outlive the job.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::Digest;

use crate::support::{Server, component, components_dir, pipeline, shared_cache};

/// Runs `cmd` to its end, killing it after `limit` (then the output says so).
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start alephauto");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn serve(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_alephauto"));
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--config"]).arg(config).env_remove("ALEPHAUTO_API_KEY");
    cmd
}

/// Waits for the "listening" line of a started `serve`.
fn wait_listening(child: &mut Child) -> bool {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("AlephAuto listening on ") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120)).is_ok()
}

#[test]
fn the_default_config_starts_with_narrow_roots_and_an_overlapping_one_is_refused() {
    // `alephauto serve` with no config file, in a fresh working folder and home folder.
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home_c = std::fs::canonicalize(home.path()).unwrap();
    let work_c = std::fs::canonicalize(work.path()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alephauto"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .current_dir(&work_c)
        .env("HOME", &home_c)
        .env_remove("XDG_DATA_HOME")
        .env_remove("ALEPHAUTO_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start alephauto serve");
    let listening = wait_listening(&mut child);
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "the default configuration must start");
    let written: toml::Table = std::fs::read_to_string(work_c.join("alephauto.toml")).unwrap().parse().unwrap();
    let data = PathBuf::from(written["runtime"]["data_dir"].as_str().unwrap());
    assert_eq!(data, home_c.join(".local/share/alephauto"), "the data folder is outside the working folder");
    assert!(data.join("alephauto.db").exists(), "the data folder is where the config says: {}", data.display());
    let pipelines = written["pipelines"].as_table().unwrap();
    assert_eq!(pipelines.len(), 8);
    for (id, p) in pipelines {
        let roots: Vec<PathBuf> =
            p["roots"].as_array().unwrap().iter().map(|r| PathBuf::from(r.as_str().unwrap())).collect();
        assert_eq!(roots, vec![home_c.join("code")], "{id}: the default grant is ~/code, not the home or temp folder");
        assert!(roots.iter().all(|r| !data.starts_with(r) && !r.starts_with(&data)), "{id}: {roots:?}");
    }

    // A root that contains the data folder is refused at start, naming pipeline, root and folder.
    let state = std::fs::canonicalize(tempfile::tempdir().unwrap().keep()).unwrap();
    let config = state.join("alephauto.toml");
    let table = |roots: &Path, extra: &str| {
        format!(
            "[runtime]\ndata_dir = {:?}\n{extra}\n{}",
            state.join("data").display().to_string(),
            pipeline("probe", "fixture_data_probe", &format!("roots = [{:?}]", roots.display().to_string()))
        )
    };
    std::fs::write(&config, table(&state, "")).unwrap();
    let out = run_bounded(serve(&config), Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must not start: {stderr}");
    assert!(stderr.contains("pipelines.probe.roots"), "{stderr}");
    assert!(stderr.contains(&format!("{} contains the data folder", state.display())), "{stderr}");
    assert!(stderr.contains(&state.join("data").display().to_string()), "{stderr}");
    assert!(!state.join("data").exists(), "refused before anything was created");

    // The same for a database named on the command line inside a root.
    let repos = state.join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    std::fs::write(&config, table(&repos, "")).unwrap();
    let mut cmd = serve(&config);
    cmd.arg("--db").arg(repos.join("jobs.db"));
    let out = run_bounded(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must not start: {stderr}");
    assert!(stderr.contains("pipelines.probe.roots") && stderr.contains("SQLite database's folder"), "{stderr}");
    assert!(!repos.join("jobs.db").exists());
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test]
async fn path_parameters_into_the_data_folder_or_cache_get_400_even_inside_a_root() {
    // Roots that did not exist when the config was checked and later became links to the
    // server's own folders: only the per-parameter check stands between a guest and them.
    let server = Server::start(
        &[
            pipeline("probe", "fixture_data_probe", "roots = [\"ROOT/later\"]"),
            pipeline("cache-probe", "fixture_data_probe", "roots = [\"ROOT/cache-link\"]"),
            pipeline("writer", "fixture_data_probe", "roots = [\"ROOT\"]"),
        ]
        .concat(),
    );
    let later = server.dir.join("later");
    std::os::unix::fs::symlink(&server.state, &later).unwrap();
    let cache = std::fs::canonicalize(shared_cache()).unwrap();
    std::os::unix::fs::symlink(&cache, server.dir.join("cache-link")).unwrap();

    // Another job's outputs, written for real.
    let other = server.run("writer", json!({})).await;
    assert_eq!(other["status"], "completed", "{other}\n{}", server.log());
    let other_id = other["id"].as_str().unwrap();
    let other_out = later.join("data/outputs").join(other_id);
    assert!(other_out.join("report.txt").is_file());
    let wal = later.join("data/alephauto.db-wal");
    assert!(wal.exists(), "SQLite runs in WAL mode");
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
        .expect("a compiled entry in the shared cache")
        .file_name();

    let attempts: Vec<(&str, PathBuf, &str)> = vec![
        ("probe", later.join("data/alephauto.db"), "lies inside AlephAuto's own data"),
        ("probe", wal, "lies inside AlephAuto's own data"),
        ("probe", other_out.join("report.txt"), "lies inside AlephAuto's own data"),
        ("probe", other_out.clone(), "lies inside AlephAuto's own data"),
        ("probe", later.clone(), "would grant"),
        ("cache-probe", server.dir.join("cache-link").join(&entry), "lies inside AlephAuto's own data"),
    ];
    for (pipeline, path, why) in attempts {
        let (code, body) = server.trigger(pipeline, json!({"read": path.display().to_string()})).await;
        assert_eq!(code, 400, "{pipeline} {}: {body}", path.display());
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("read") && error.contains(why), "{}: {error}", path.display());
    }
    // Nothing was queued by the refused triggers; the server keeps serving.
    assert_eq!(server.count("queued").await + server.count("running").await, 0);
    assert_eq!(server.run("writer", json!({})).await["status"], "completed");
}

/// The cache entry of the component `stem` in `cache`.
fn entry_of(cache: &Path, stem: &str) -> PathBuf {
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(component(stem)).unwrap()));
    std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with(&digest) && p.extension().is_some_and(|x| x == "cwasm")
        })
        .unwrap_or_else(|| panic!("no cache entry for {stem} in {}", cache.display()))
}

#[tokio::test]
async fn a_changed_cache_entry_is_recompiled_never_loaded() {
    let mut server = Server::start_with_private_cache(
        &[pipeline("noop", "fixture_noop", ""), pipeline("echo", "fixture_echo", "")].concat(),
    );
    assert_eq!(server.run("noop", json!({})).await["status"], "completed");
    assert_eq!(server.run("echo", json!({"message": "hi"})).await["status"], "completed");
    let cache = server.data_dir().join("cache");
    let key = server.data_dir().join("cache.key");
    assert!(key.is_file() && !cache.join("cache.key").exists(), "the key lives beside the cache, not in it");
    let noop_entry = entry_of(&cache, "fixture_noop");
    let echo_entry = entry_of(&cache, "fixture_echo");
    assert!(components_dir().join("fixture_noop.wasm").is_file());

    // 1. Genuine native code of another worker under noop's name.
    server.kill();
    std::fs::copy(&echo_entry, &noop_entry).unwrap();
    server.restart();
    let job = server.run("noop", json!({"message": "swapped"})).await;
    assert_eq!(job["status"], "completed", "{job}\n{}", server.log());
    assert_eq!(job["result"]["ok"], json!(true), "noop's own code ran, not echo's: {job}");
    let log = server.log();
    assert!(log.contains("refusing to load cache entry") && log.contains("authentication tag does not match"), "{log}");
    assert!(log.contains(&noop_entry.display().to_string()), "the log names the entry: {log}");

    // 2. The rewritten entry's bytes changed in place, name kept.
    server.kill();
    let mut bytes = std::fs::read(&noop_entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&noop_entry, &bytes).unwrap();
    server.restart();
    let job = server.run("noop", json!({})).await;
    assert_eq!(job["status"], "completed", "{job}\n{}", server.log());
    assert!(server.log().contains("refusing to load cache entry"), "{}", server.log());
    // The genuine entry echo wrote is still trusted.
    assert_eq!(server.run("echo", json!({"message": "again"})).await["status"], "completed");
    assert!(!server.log().contains(&echo_entry.display().to_string()), "echo's entry verified: {}", server.log());
}

#[tokio::test]
async fn outward_links_planted_in_an_output_folder_are_gone_after_the_job() {
    let server = Server::start(&pipeline("probe", "fixture_data_probe", "roots = [\"ROOT\"]"));
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "OUTSIDE").unwrap();

    let job = server.run("probe", json!({"plant": secret.display().to_string()})).await;
    assert_eq!(job["status"], "completed", "{job}\n{}", server.log());
    let planted: Vec<String> =
        job["result"]["planted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let outward: Vec<&String> = planted.iter().filter(|n| *n != "latest").collect();
    assert!(!outward.is_empty(), "the guest could plant at least one outward link: {job}");

    let out = server.data_dir().join("outputs").join(job["id"].as_str().unwrap());
    let start = Instant::now();
    while outward.iter().any(|name| std::fs::symlink_metadata(out.join(name)).is_ok()) {
        assert!(start.elapsed() < Duration::from_secs(20), "outward links {outward:?} still in {}", out.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read_to_string(out.join("report.txt")).unwrap(), "report", "the job's real output stays");
    if planted.iter().any(|n| n == "latest") {
        assert!(std::fs::symlink_metadata(out.join("latest")).is_ok(), "a link inside the folder stays");
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "OUTSIDE", "the link's target is untouched");
}
