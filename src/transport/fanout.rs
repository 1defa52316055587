//! Every host at once, at most `--forks` at a time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;

use super::session::{self, StepLog};
use super::{HostError, Session, SshOptions};
use crate::timing::{Stage, Timings};

/// What the transport needs of a host: where to connect. It knows nothing
/// else of the inventory.
pub(crate) trait Target: Clone + Send + Sync + 'static {
    fn address(&self) -> std::net::IpAddr;
}

/// What happened on one host: the job's result, or the transport's error
/// (which `E` takes in).
#[derive(Debug)]
pub(crate) struct HostOutcome<H, T, E = HostError> {
    pub(crate) host: H,
    pub(crate) result: Result<T, E>,
    pub(crate) elapsed: Duration,
    /// Where the time went: the connection's stages, the job's, and the
    /// total (as far as the host got).
    pub(crate) timings: Timings,
    /// What the job's remote steps printed on stderr.
    pub(crate) log: Vec<StepLog>,
}

/// The bastion connections (one per hop), opened once on first use and
/// shared by every host's tunnel: one connection means one MaxStartups
/// slot on each bastion. A failure keeps the failed hop's label and why.
type SharedBastion = OnceCell<Result<Arc<session::Bastion>, (String, String)>>;

/// Opens a session to every host and runs `job` on it. A host's failure is
/// data in its outcome, never an early return; `done` hears of each host as
/// it ends (a progress bar), and outcomes come back in the order of
/// `hosts`.
pub(crate) async fn fan_out<H, T, E, F, Fut>(
    hosts: &[H],
    opts: Arc<SshOptions>,
    done: impl Fn(&HostOutcome<H, T, E>),
    job: F,
) -> Vec<HostOutcome<H, T, E>>
where
    H: Target,
    T: Send + 'static,
    E: From<HostError> + Send + 'static,
    F: Fn(Session, H) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    super::raise_nofile(opts.forks.get().min(hosts.len()));
    let forks = Arc::new(Semaphore::new(opts.forks.get()));
    let bastion: Arc<SharedBastion> = Arc::new(OnceCell::new());
    let mut tasks = JoinSet::new();
    for (i, host) in hosts.iter().cloned().enumerate() {
        let (forks, opts, bastion, job) = (forks.clone(), opts.clone(), bastion.clone(), job.clone());
        tasks.spawn(async move {
            let _permit = forks
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            (i, one_host(host, &opts, &bastion, job).await)
        });
    }
    in_order(tasks, done, hosts.len()).await
}

/// One host, once it holds its fork: its job's result, and where its time
/// went, up to the total.
async fn one_host<H, T, E, F, Fut>(
    host: H,
    opts: &SshOptions,
    bastion: &SharedBastion,
    job: F,
) -> HostOutcome<H, T, E>
where
    H: Target,
    E: From<HostError>,
    F: Fn(Session, H) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let mut timings = Timings::default();
    let mut log = Vec::new();
    let result = run_job(&host, opts, bastion, job, &mut timings, &mut log).await;
    let elapsed = start.elapsed();
    timings.add(Stage::Total, elapsed);
    HostOutcome {
        host,
        result,
        elapsed,
        timings,
        log,
    }
}

/// Connects to `host` (through the bastions, if any), runs `job` on the
/// session and closes it; the session's timings and the job's remote
/// steps' stderr go to `timings` and `log`.
async fn run_job<H, T, E, F, Fut>(
    host: &H,
    opts: &SshOptions,
    bastion: &SharedBastion,
    job: F,
    timings: &mut Timings,
    log: &mut Vec<StepLog>,
) -> Result<T, E>
where
    H: Target,
    E: From<HostError>,
    F: Fn(Session, H) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let via = through_bastion(opts, bastion, timings).await?;
    let session = Session::open(host.address(), opts, via, timings).await?;
    let result = job(session.clone(), host.clone()).await;
    session.close().await;
    let (steps, lines) = session.recorded();
    timings.merge(&steps);
    *log = lines;
    result
}

/// The bastion connections, when the run goes through bastions: the first
/// host to ask opens them, the others wait for it (the wait is their
/// `jump` time).
async fn through_bastion(
    opts: &SshOptions,
    bastion: &SharedBastion,
    timings: &mut Timings,
) -> Result<Option<Arc<session::Bastion>>, HostError> {
    let Some(jump) = &opts.jump else {
        return Ok(None);
    };
    let waited = Instant::now();
    let bastion = bastion
        .get_or_init(|| async {
            session::Bastion::connect(jump, opts)
                .await
                .map(Arc::new)
                .map_err(|(hop, e)| (hop, e.to_string()))
        })
        .await
        .clone();
    timings.add(Stage::Jump, waited.elapsed());
    Ok(Some(
        bastion.map_err(|(jump, reason)| HostError::Jump { jump, reason })?,
    ))
}

/// Every host's outcome, told to `done` as it ends, then put back in the
/// order of the hosts.
async fn in_order<H, T, E>(
    mut tasks: JoinSet<(usize, HostOutcome<H, T, E>)>,
    done: impl Fn(&HostOutcome<H, T, E>),
    hosts: usize,
) -> Vec<HostOutcome<H, T, E>>
where
    H: 'static,
    T: 'static,
    E: 'static,
{
    let mut outcomes = Vec::with_capacity(hosts);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, outcome)) => {
                done(&outcome);
                outcomes.push((i, outcome));
            }
            // A task only ends this way if the job panicked: a bug, not a host.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, o)| o).collect()
}
