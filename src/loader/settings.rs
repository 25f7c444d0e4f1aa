//! How the loader behaves beyond where the data is: run mode, parallelism, sleeps, retries.
use std::sync::Arc;
use std::time::Duration;

use crate::notifier::NotificationSettings;

/// How hard to retry a delivery that failed for a transient reason.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What the loader does, beyond where the data is.
#[derive(Clone, Debug)]
pub struct LoaderSettings {
    pub run_as_service: bool,
    pub dry_run: bool,
    /// Table streams loading at once.
    pub parallelism: usize,
    pub min_sleep: Duration,
    pub max_sleep: Duration,
    pub retry: RetryPolicy,
    /// Bytes of binary COPY data per message from the decoding thread to the COPY.
    pub chunk_bytes: usize,
    /// Write change notifications to the outbox (None: notifications off, or dry run).
    pub notification: Option<Arc<NotificationSettings>>,
    /// How long a delivery waits for its notification to be acknowledged before it moves on
    /// (the message stays in the outbox and goes out later either way).
    pub publish_wait: Duration,
    /// How often the whole bucket path is listed (besides at start-up) to find files that
    /// appeared behind a stream's cursor.
    pub full_list_interval: Duration,
}

impl Default for LoaderSettings {
    fn default() -> Self {
        LoaderSettings {
            run_as_service: true,
            dry_run: false,
            parallelism: crate::config::default_parallelism(),
            min_sleep: Duration::from_secs(15),
            max_sleep: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            chunk_bytes: 512 * 1024,
            notification: None,
            publish_wait: Duration::from_secs(2),
            full_list_interval: Duration::from_secs(3600),
        }
    }
}

impl LoaderSettings {
    pub fn from_config(config: &crate::config::Config) -> Self {
        LoaderSettings {
            run_as_service: config.run_as_service,
            dry_run: config.dry_run,
            parallelism: config.parallelism,
            min_sleep: Duration::from_secs_f64(config.min_sleep),
            max_sleep: Duration::from_secs_f64(config.max_sleep),
            full_list_interval: Duration::from_secs_f64(config.full_list_interval),
            notification: config.publishes().then(|| {
                Arc::new(NotificationSettings {
                    datasource: config.notification_datasource.clone(),
                    process: config.notification_process.clone(),
                    host: gethostname::gethostname().to_string_lossy().into_owned(),
                })
            }),
            ..LoaderSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(4), Duration::from_millis(500));
    }
}
