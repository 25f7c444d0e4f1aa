//! One home for "what do we do about this failure": every failure is classified into one
//! [`ErrorKind`], and each kind has exactly one [`Directive`] and one operator-facing solution in
//! [`POLICIES`]. Waits between tries come from one [`Backoff`].
use std::time::Duration;

use crate::source::SourceError;
use crate::target::TargetError;

/// What went wrong, as far as deciding what to do goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The bucket did not answer, answered 5xx, 429 or 408, throttled, or cut a body short.
    SourceUnavailable,
    /// The bucket refused the request (access denied, no such bucket or key, bad request).
    SourceRefused,
    /// The file is not valid DMS data: gzip, CSV, a value, a NULL key, a value too long.
    BadInput,
    /// Postgres is unreachable, lost the connection, or is out of resources (SQLSTATE classes
    /// 08, 53, 57, 58, or no SQLSTATE and an I/O error).
    TargetUnavailable,
    /// A serialization failure or a deadlock (class 40).
    TargetConflict,
    /// Another loader is delivering this table stream right now.
    StreamBusy,
    /// Another loader delivered this file meanwhile.
    AlreadyDelivered,
    /// A full-load file cannot go straight into its table (a repeated or existing key, a delete).
    NeedsStaging,
    /// Postgres refused the loader itself: a wrong password, no such role or database, no
    /// permission (SQLSTATE class 28, 3D000, 42501). Not the file's fault: a delivery is retried
    /// and stays pending; at start-up it ends the process (exit code 2).
    AccessDenied,
    /// Postgres rejected a statement for another reason (constraints, the schema).
    TargetRejected,
    /// The target schema is not what the loader needs (a type it cannot decode, no primary key,
    /// an edited migration).
    Schema,
    /// DMS re-ran the table's full load and `RELOAD_POLICY=stop`: an operator decides.
    FullLoadRerun,
    /// A change file arrived late and `LATE_FILE_POLICY=stop`: an operator decides.
    LateFile,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::SourceUnavailable,
        ErrorKind::SourceRefused,
        ErrorKind::BadInput,
        ErrorKind::TargetUnavailable,
        ErrorKind::TargetConflict,
        ErrorKind::StreamBusy,
        ErrorKind::AlreadyDelivered,
        ErrorKind::NeedsStaging,
        ErrorKind::AccessDenied,
        ErrorKind::TargetRejected,
        ErrorKind::Schema,
        ErrorKind::FullLoadRerun,
        ErrorKind::LateFile,
    ];
}

/// What the loader does about a failure of a file's delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directive {
    /// Try the same file again after a [`Backoff`] wait; it stays pending if the tries run out.
    RetryWithBackoff,
    /// Record the failure in the ledger (`ERROR`) and stop the file's stream there until the
    /// object is replaced or an operator acts.
    StopStream,
    /// Leave the stream to the loader that holds it; look again on the next pass.
    LeaveStream,
    /// Nothing to do: the file is done; go on with the next one.
    NextFile,
    /// Apply the same file again through the staging table, at once (not a failure).
    Restage,
}

impl Directive {
    /// Whether trying the same thing again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Directive::RetryWithBackoff | Directive::LeaveStream)
    }
}

/// A kind's directive, its `errors_total{kind}` label, and what an operator can do about it.
#[derive(Debug)]
pub struct Policy {
    pub kind: ErrorKind,
    pub directive: Directive,
    /// The `kind` label of `paper_engine_loader_errors_total`.
    pub metric: &'static str,
    pub solution: &'static str,
}

/// The table: one row per kind.
pub const POLICIES: &[Policy] = &[
    Policy {
        kind: ErrorKind::SourceUnavailable,
        directive: Directive::RetryWithBackoff,
        metric: "source",
        solution: "none needed if it passes; otherwise check the bucket endpoint and the network (/readyz names the failing side)",
    },
    Policy {
        kind: ErrorKind::SourceRefused,
        directive: Directive::StopStream,
        metric: "source",
        solution: "check SOURCE (bucket name, credentials) and the bucket policy, then replace the object or retry it",
    },
    Policy {
        kind: ErrorKind::BadInput,
        directive: Directive::StopStream,
        metric: "input",
        solution: "fix or replace the object in the bucket (a new ETag is tried again), or skip it; the error names the line and column",
    },
    Policy {
        kind: ErrorKind::TargetUnavailable,
        directive: Directive::RetryWithBackoff,
        metric: "target",
        solution: "none needed if it passes; otherwise check that Postgres is up and reachable at TARGET",
    },
    Policy {
        kind: ErrorKind::TargetConflict,
        directive: Directive::RetryWithBackoff,
        metric: "target",
        solution: "none needed: the transaction is tried again",
    },
    Policy {
        kind: ErrorKind::StreamBusy,
        directive: Directive::LeaveStream,
        metric: "target",
        solution: "none: another loader instance is delivering this table",
    },
    Policy {
        kind: ErrorKind::AlreadyDelivered,
        directive: Directive::NextFile,
        metric: "target",
        solution: "none: another loader instance delivered the file",
    },
    Policy {
        kind: ErrorKind::NeedsStaging,
        directive: Directive::Restage,
        metric: "target",
        solution: "none: the file is applied through the staging table",
    },
    Policy {
        kind: ErrorKind::AccessDenied,
        directive: Directive::RetryWithBackoff,
        metric: "target",
        solution: "check TARGET (user, password, database name, sslmode and sslrootcert) and the role's privileges on the database and TARGET_SCHEMA",
    },
    Policy {
        kind: ErrorKind::TargetRejected,
        directive: Directive::StopStream,
        metric: "target",
        solution: "read Postgres's message and SQLSTATE in the error; fix the cause (permissions, disk, the schema), then retry the file",
    },
    Policy {
        kind: ErrorKind::Schema,
        directive: Directive::StopStream,
        metric: "target",
        solution: "make the target schema match db/ (see the data specification), then retry the file",
    },
    Policy {
        kind: ErrorKind::FullLoadRerun,
        directive: Directive::StopStream,
        metric: "reload",
        solution: "retry the file to replace the table by the new full load (or set RELOAD_POLICY=reload), or skip it to keep the table as it is",
    },
    Policy {
        kind: ErrorKind::LateFile,
        directive: Directive::StopStream,
        metric: "late",
        solution: "set LATE_FILE_POLICY=apply-guarded and retry the file (its rows then apply only where no later change file wrote), or skip it",
    },
];

/// The policy of a kind.
pub fn policy(kind: ErrorKind) -> &'static Policy {
    POLICIES
        .iter()
        .find(|p| p.kind == kind)
        .expect("every kind has a policy")
}

/// The kind of a bucket failure.
pub fn source_kind(e: &SourceError) -> ErrorKind {
    match e {
        SourceError::Request { status, code, .. } => match status {
            None => ErrorKind::SourceUnavailable,
            Some(s)
                if *s >= 500
                    || *s == 429
                    || *s == 408
                    || matches!(
                        code.as_deref(),
                        Some("SlowDown" | "Throttling" | "RequestTimeout")
                    ) =>
            {
                ErrorKind::SourceUnavailable
            }
            Some(_) => ErrorKind::SourceRefused,
        },
        SourceError::Body { .. } => ErrorKind::SourceUnavailable,
    }
}

/// The kind of a Postgres-side failure.
pub fn target_kind(e: &TargetError) -> ErrorKind {
    match e {
        TargetError::Postgres { source, .. } => match source.code() {
            // The server's certificate refused (sslmode verify-ca/verify-full): configuration.
            None if crate::target::describe_pg_error(source)
                .contains("invalid peer certificate") =>
            {
                ErrorKind::AccessDenied
            }
            // No SQLSTATE: transient only if the connection failed, not if, say, a parameter
            // could not be encoded.
            None if source.is_closed()
                || std::error::Error::source(source)
                    .is_some_and(|inner| inner.is::<std::io::Error>()) =>
            {
                ErrorKind::TargetUnavailable
            }
            None => ErrorKind::TargetRejected,
            Some(code) => sqlstate_kind(code.code()),
        },
        // An unreadable sslrootcert, a TLS set-up the configuration makes impossible.
        TargetError::Pool(m) if m.starts_with("sslrootcert ") || m.starts_with("TLS: ") => {
            ErrorKind::AccessDenied
        }
        TargetError::Pool(_) => ErrorKind::TargetUnavailable,
        TargetError::Input(f) if f.retryable => ErrorKind::SourceUnavailable,
        TargetError::Input(_) => ErrorKind::BadInput,
        TargetError::Busy(_) => ErrorKind::StreamBusy,
        TargetError::AlreadyDelivered(_) => ErrorKind::AlreadyDelivered,
        TargetError::Schema(_) => ErrorKind::Schema,
        TargetError::NeedsStaging(_) => ErrorKind::NeedsStaging,
    }
}

/// The kind of a SQLSTATE: classes 08, 53, 57, 58 are an unavailable server, 40 a conflict;
/// 22 and 23 (data exceptions and integrity violations raised by a file's values) are bad
/// input; the rest is a rejected statement.
pub fn sqlstate_kind(code: &str) -> ErrorKind {
    if code == "3D000" || code == "42501" {
        return ErrorKind::AccessDenied;
    }
    match code.get(..2) {
        Some("28") => ErrorKind::AccessDenied,
        Some("08" | "53" | "57" | "58") => ErrorKind::TargetUnavailable,
        Some("40") => ErrorKind::TargetConflict,
        Some("22" | "23") => ErrorKind::BadInput,
        _ => ErrorKind::TargetRejected,
    }
}

/// Exponential waits between tries: `first`, then doubling, never above `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff { first, max }
    }

    /// The wait after the `attempt`-th failure (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.first.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_exactly_one_policy() {
        for kind in ErrorKind::ALL {
            assert_eq!(
                POLICIES.iter().filter(|p| p.kind == kind).count(),
                1,
                "{kind:?}"
            );
        }
        assert_eq!(POLICIES.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn transient_faults_are_retried_and_bad_files_stop_their_stream() {
        let directive = |k| policy(k).directive;
        assert_eq!(
            directive(ErrorKind::SourceUnavailable),
            Directive::RetryWithBackoff
        );
        assert_eq!(
            directive(ErrorKind::TargetUnavailable),
            Directive::RetryWithBackoff
        );
        assert_eq!(directive(ErrorKind::BadInput), Directive::StopStream);
        assert_eq!(directive(ErrorKind::StreamBusy), Directive::LeaveStream);
        assert_eq!(directive(ErrorKind::NeedsStaging), Directive::Restage);
    }

    #[test]
    fn sqlstates_map_by_class() {
        assert_eq!(sqlstate_kind("08006"), ErrorKind::TargetUnavailable);
        assert_eq!(sqlstate_kind("57P01"), ErrorKind::TargetUnavailable);
        assert_eq!(sqlstate_kind("40P01"), ErrorKind::TargetConflict);
        assert_eq!(sqlstate_kind("22001"), ErrorKind::BadInput);
        assert_eq!(sqlstate_kind("42501"), ErrorKind::AccessDenied);
        assert_eq!(sqlstate_kind("28P01"), ErrorKind::AccessDenied);
        assert_eq!(sqlstate_kind("3D000"), ErrorKind::AccessDenied);
        assert_eq!(sqlstate_kind("42P01"), ErrorKind::TargetRejected);
    }

    #[test]
    fn bucket_answers_map_to_kinds() {
        let request = |status, code: Option<&str>| SourceError::Request {
            op: "GetObject",
            what: "k".into(),
            status,
            code: code.map(str::to_string),
            message: String::new(),
        };
        assert_eq!(
            source_kind(&request(None, None)),
            ErrorKind::SourceUnavailable
        );
        assert_eq!(
            source_kind(&request(Some(503), None)),
            ErrorKind::SourceUnavailable
        );
        assert_eq!(
            source_kind(&request(Some(400), Some("SlowDown"))),
            ErrorKind::SourceUnavailable
        );
        assert_eq!(
            source_kind(&request(Some(403), Some("AccessDenied"))),
            ErrorKind::SourceRefused
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(3), Duration::from_millis(400));
        assert_eq!(b.delay(4), Duration::from_millis(500));
        assert_eq!(b.delay(100), Duration::from_millis(500));
    }
}
