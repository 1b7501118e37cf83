//! The worker registry in-process: one shared initialisation under a stampede,
//! and the circuit breaker.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alephauto::config::{Config, PipelineConfig};
use alephauto::registry::breaker::BreakerSettings;
use alephauto::registry::{Registry, RegistryError};
use alephauto::sandbox::Sandbox;
use alephauto::sandbox::capabilities::git::GitSettings;
use alephauto::sandbox::engine::EngineSettings;

use crate::support::{component, eventually};

fn registry(pipelines: &[(&str, &str)], breaker: BreakerSettings) -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.pipelines.clear();
    for (id, stem) in pipelines {
        config.pipelines.insert(id.to_string(), PipelineConfig::new(PathBuf::from(component(stem))));
    }
    let engine = EngineSettings { pooling: true, pool_memories: 16 };
    let sandbox = Arc::new(Sandbox::new(&engine, &dir.path().join("cache"), GitSettings::default()).unwrap());
    (Registry::new(sandbox, &config, breaker), dir)
}

#[tokio::test]
async fn a_hundred_concurrent_first_calls_share_one_initialisation() {
    let (registry, _dir) = registry(&[("noop", "fixture_noop")], BreakerSettings::default());
    let registry = Arc::new(registry);
    let calls = (0..100).map(|_| {
        let r = registry.clone();
        tokio::spawn(async move { r.get_worker("noop").await.map(|w| Arc::as_ptr(&w) as usize) })
    });
    let ptrs: Vec<usize> = futures::future::join_all(calls).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert!(ptrs.windows(2).all(|w| w[0] == w[1]), "every caller got the same worker");
    let status = registry.status("noop").unwrap();
    assert_eq!(status.init_attempts, 1, "exactly one compile/init");
    assert!(status.loaded);
    assert!(registry.is_supported("noop"));
    assert!(!registry.is_supported("other"));
    match registry.get_worker("other").await {
        Err(RegistryError::Unknown { supported, .. }) => assert_eq!(supported, vec!["noop".to_string()]),
        other => panic!("{other:?}"),
    }
    registry.shutdown().await;
    assert!(matches!(registry.get_worker("noop").await, Err(RegistryError::ShuttingDown)));
}

#[tokio::test]
async fn repeated_init_failures_trip_the_breaker_and_it_recovers_after_the_cooldown() {
    let breaker = BreakerSettings { threshold: 3, base: Duration::from_millis(400), max: Duration::from_secs(2) };
    let (registry, _dir) = registry(&[("bad", "fixture_bad_init")], breaker);
    for _ in 0..3 {
        assert!(matches!(registry.get_worker("bad").await, Err(RegistryError::InitFailed { .. })));
    }
    match registry.get_worker("bad").await {
        Err(RegistryError::Cooldown { retry_after, last_error, .. }) => {
            assert!(retry_after <= Duration::from_millis(400));
            assert!(last_error.contains("refuses to start"), "{last_error}");
        }
        other => panic!("expected cooldown, got {other:?}"),
    }
    assert_eq!(registry.status("bad").unwrap().init_attempts, 3, "no attempt during the cooldown");
    eventually(Duration::from_secs(5), "the cooldown ends", || async {
        let status = registry.status("bad").unwrap();
        if status.cooling_down { Err(status.failures) } else { Ok(()) }
    })
    .await;
    // One attempt goes through after the cooldown; it fails again and the cooldown doubles.
    assert!(matches!(registry.get_worker("bad").await, Err(RegistryError::InitFailed { .. })));
    match registry.get_worker("bad").await {
        Err(RegistryError::Cooldown { retry_after, .. }) => assert!(retry_after > Duration::from_millis(400)),
        other => panic!("expected a longer cooldown, got {other:?}"),
    }
}

#[tokio::test]
async fn a_restart_loads_the_compiled_component_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.pipelines.clear();
    config.pipelines.insert("noop".into(), PipelineConfig::new(PathBuf::from(component("fixture_noop"))));
    let engine = EngineSettings { pooling: false, pool_memories: 16 };
    let mut from_cache = Vec::new();
    for _ in 0..2 {
        let sandbox = Arc::new(Sandbox::new(&engine, &dir.path().join("cache"), GitSettings::default()).unwrap());
        let registry = Registry::new(sandbox, &config, BreakerSettings::default());
        from_cache.push(registry.get_worker("noop").await.unwrap().from_cache);
    }
    assert_eq!(from_cache, vec![false, true]);
}

#[tokio::test]
async fn a_native_handler_replaces_the_component_for_baseline_measurements() {
    use alephauto::events::{EventBus, EventKind};
    use alephauto::gitflow::GitWorkflow;
    use alephauto::queue::{Queue, QueueSettings};
    use alephauto::store::sqlite::SqliteStore;
    use serde_json::json;

    let (registry, dir) = registry(&[("noop", "fixture_noop")], BreakerSettings::default());
    let store = Arc::new(SqliteStore::open(&dir.path().join("q.db")).unwrap());
    let events = EventBus::new(64);
    let settings = QueueSettings {
        max_attempts: 1,
        retry_base: Duration::from_millis(10),
        max_log_bytes: 1024,
        max_result_bytes: 1024,
        outputs_dir: dir.path().join("out"),
        execution_enabled: true,
    };
    let queue = Queue::new(store, Arc::new(registry), events.clone(), settings, GitWorkflow::new(&Default::default()));
    queue.set_native_handler("noop", Arc::new(|job| Ok(json!({"native": true, "attempt": job.attempt}))));
    let mut rx = events.subscribe();
    let job = queue.trigger("noop", json!({})).await.unwrap();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
        if e.job_id == job.id && e.kind == EventKind::Completed {
            assert_eq!(e.payload["result"], json!({"native": true, "attempt": 1}));
            break;
        }
    }
    assert!(!dir.path().join("out").join(&job.id).exists(), "no sandbox was set up");
}
