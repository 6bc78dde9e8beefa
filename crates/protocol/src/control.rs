//! Master ↔ worker control messages.
//!
//! Transport: a `SOCK_SEQPACKET` socketpair created by the master; the worker's end is
//! `WorkerBoot::control_fd`. One message per packet, encoded as JSON. EOF on either side
//! means the peer is gone: a worker that sees EOF stops accepting, finishes what it holds
//! and exits.

use serde::{Deserialize, Serialize};

/// Worker → master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromWorker {
    /// The app is imported and the worker is accepting on every listener.
    Ready {
        pid: i32,
    },
    /// Periodic counters (about once a second while there is traffic, and on exit).
    Stats(WorkerStats),
    /// A request is being handled / finished (for `busy`/`idle` status and harakiri).
    Busy {
        since_unix_ms: u64,
    },
    Idle,
    /// The app could not be loaded (sent just before the worker exits with code 22): the
    /// Python exception in one line (type, message, file and line).
    LoadFailed {
        error: String,
    },
}

/// Master → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToWorker {
    /// Stop accepting, finish in-flight requests, exit 0 (uWSGI: exit code 17 on reload).
    GracefulStop,
    /// Exit now.
    Stop,
}

/// Counters a worker reports; field names and units follow uWSGI's stats JSON (§8).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
    pub requests: u64,
    pub exceptions: u64,
    /// Bytes sent.
    pub tx: u64,
    /// µs, summed request time.
    pub running_time: u64,
    /// µs, exponential average (each request moves it halfway).
    pub avg_rt: u64,
    /// Bytes.
    pub rss: u64,
    pub vsz: u64,
    /// Requests in flight right now.
    pub in_request: u32,
}

impl FromWorker {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("control messages always serialize")
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

impl ToWorker {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("control messages always serialize")
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
