//! Running collections on an interval inside the registry.

use std::future::Future;
use std::time::Duration;

/// Calls `tick` every `interval`, forever. The first call waits a random part of the interval
/// so replicas started together do not all reach for the lock at once (only one would get it).
pub async fn every<F, Fut>(interval: Duration, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let first = interval.mul_f64(jitter());
    tokio::time::sleep(first).await;
    loop {
        let started = tokio::time::Instant::now();
        tick().await;
        // A collection that took longer than the interval is followed by the next at once,
        // never by a burst of missed ones.
        tokio::time::sleep_until(started + interval).await;
    }
}

/// A number in [0, 1) that differs between processes.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = (u64::from(nanos) ^ (u64::from(std::process::id()) << 20))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn ticks_on_the_interval() {
        let count = Arc::new(AtomicU32::new(0));
        let c = count.clone();
        let task = tokio::spawn(every(Duration::from_secs(10), move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
            }
        }));
        tokio::time::sleep(Duration::from_secs(55)).await;
        task.abort();
        let n = count.load(Ordering::SeqCst);
        assert!((5..=6).contains(&n), "{n}");
    }

    #[test]
    fn jitter_is_a_fraction() {
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }
}
