//! Where runnable jobs come from: this process's lanes ([`super::lanes::LocalLanes`]) or
//! claims from a store shared by a cluster ([`super::cluster::Cluster`]). The queue asks
//! `Inner::source` and never branches on the mode itself.

use std::future::Ready;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, Either};

use super::executor::Executor;
use super::{Inner, Lane, TriggerError};
use crate::domain::Job;
use crate::events::JobEvent;
use crate::store::StoreError;

/// A step that local lanes finish at once and a cluster may have to wait for: the local
/// path pays no allocation.
pub(crate) type Step<'a, T> = Either<Ready<T>, BoxFuture<'a, T>>;

/// A finished step.
pub(crate) fn ready<'a, T>(value: T) -> Step<'a, T> {
    Either::Left(std::future::ready(value))
}

/// Where runnable jobs come from, and where their events go.
pub(crate) trait JobSource<X: Executor>: Send + Sync {
    /// Whether an event would reach anyone (a subscriber here, or other nodes).
    fn wants_events(&self, inner: &Inner<X>) -> bool;

    /// Publishes an event.
    fn publish<'a>(&'a self, inner: &'a Inner<X>, event: JobEvent) -> Step<'a, ()>;

    /// Makes room for one new job of `pipeline` within its lane's cap, before the insert.
    fn reserve<'a>(
        &'a self,
        inner: &'a Inner<X>,
        pipeline: &'a str,
        lane: &'a Mutex<Lane>,
    ) -> Step<'a, Result<(), TriggerError>>;

    /// Ends a `reserve`: `job` is what was inserted (None when the insert failed).
    fn admitted(&self, inner: &Arc<Inner<X>>, pipeline: &str, lane: &Mutex<Lane>, job: Option<&Job>);

    /// Starts what can run now on `pipeline` (called when slots free up or work arrives).
    fn pump(&self, inner: &Arc<Inner<X>>, pipeline: &str);

    /// The queued job that takes over a finishing job's slot, claimed in the same write
    /// as that job's outcome (`JobStore::finish_and_claim`); its slot stays counted.
    fn successor(&self, inner: &Arc<Inner<X>>, pipeline: &str) -> Option<Job>;

    /// `job` is queued in the store, runnable after `delay` (a retry's backoff, or a
    /// claim that failed and is tried again).
    fn run_later(&self, inner: &Arc<Inner<X>>, job: Job, delay: Duration);

    /// At start: takes up what a previous process left; returns how many jobs.
    fn recover<'a>(&'a self, inner: &'a Arc<Inner<X>>) -> BoxFuture<'a, Result<usize, StoreError>>;
}
