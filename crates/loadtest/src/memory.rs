//! What the server says of its own resources on `/metrics`: resident
//! memory and open files, read while a test runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;

const RESIDENT: &str = "swiftdrop_process_resident_bytes";
const OPEN_FILES: &str = "swiftdrop_process_open_fds";

/// One gauge from the server's `/metrics`.
pub async fn server_gauge(base: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

/// Cumulative counts of one histogram on the server's `/metrics` at each
/// bound: `series` is the bucket series with its labels but the bound,
/// e.g. `swiftdrop_push_seconds_bucket{type="notification"`.
pub async fn histogram_counts(base: &str, series: &str, bounds: &[&str]) -> Vec<Option<f64>> {
    let mut counts = Vec::with_capacity(bounds.len());
    for bound in bounds {
        counts.push(server_gauge(base, &format!("{series},le=\"{bound}\"}}")).await);
    }
    counts
}

/// What a histogram gained between two readings, per bound:
/// `(bound, count)` pairs, none where the server does not say.
pub fn histogram_gain(bounds: &[&str], before: &[Option<f64>], after: &[Option<f64>]) -> Vec<(String, f64)> {
    bounds
        .iter()
        .zip(before.iter().zip(after))
        // A series the server has not shown yet has counted nothing.
        .filter_map(|(bound, (before, after))| Some(((*bound).to_owned(), (*after)? - before.unwrap_or(0.0))))
        .collect()
}

/// The server's resident memory now, in MiB.
pub async fn resident_mib(base: &str) -> Option<f64> {
    server_gauge(base, RESIDENT).await.map(|b| b / (1024.0 * 1024.0))
}

/// The server's open file descriptors now.
pub async fn open_files(base: &str) -> Option<f64> {
    server_gauge(base, OPEN_FILES).await
}

/// Samples the server's resident memory every half second until stopped,
/// for the peak a run reached.
pub struct PeakWatch {
    peak: Arc<Mutex<Option<f64>>>,
    task: JoinHandle<()>,
}

impl PeakWatch {
    pub fn start(base: &str) -> PeakWatch {
        let peak = Arc::new(Mutex::new(None));
        let (base, held) = (base.to_owned(), peak.clone());
        let task = tokio::spawn(async move {
            loop {
                if let Some(now) = resident_mib(&base).await {
                    let mut peak = held.lock().await;
                    *peak = Some(peak.map_or(now, |p: f64| p.max(now)));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        PeakWatch { peak, task }
    }

    /// The highest resident memory seen, in MiB.
    pub async fn stop(self) -> Option<f64> {
        self.task.abort();
        *self.peak.lock().await
    }
}

/// The server's memory over a run: before it, its peak, at its end and
/// after 5 s idle, printed as one line.
pub struct Footprint {
    base: String,
    before: Option<f64>,
    peak: PeakWatch,
}

impl Footprint {
    pub async fn start(base: &str) -> Footprint {
        Footprint {
            base: base.to_owned(),
            before: resident_mib(base).await,
            peak: PeakWatch::start(base),
        }
    }

    /// Prints the line; `held` says what the server holds by then.
    pub async fn report(self, held: &str) {
        let (peak, after) = (self.peak.stop().await, resident_mib(&self.base).await);
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!(
            "server memory   {} before, peak {}, {} after, {} after 5 s idle ({held})",
            mib(self.before),
            mib(peak),
            mib(after),
            mib(resident_mib(&self.base).await),
        );
    }
}

/// `12.3 MiB`, or that the server did not say.
pub fn mib(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} MiB"))
}
