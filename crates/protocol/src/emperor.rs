//! The Emperor ↔ vassal pipe protocol: single bytes on a `SOCK_STREAM` socketpair whose
//! vassal end is passed as `UWSGI_EMPEROR_FD` (uWSGI semantics §7.4). Byte-compatible with
//! uWSGI 2.0 so that uWSGI vassals run under liege's emperor and the reverse.

/// The environment variable naming the vassal's end of the socketpair.
pub const EMPEROR_FD_ENV: &str = "UWSGI_EMPEROR_FD";

/// Emperor → vassal: brutal stop.
pub const TO_VASSAL_STOP: u8 = 0;
/// Emperor → vassal: graceful reload (re-read the config).
pub const TO_VASSAL_RELOAD: u8 = 1;
/// Emperor → vassal: graceful stop.
pub const TO_VASSAL_GRACEFUL_STOP: u8 = 2;

/// Vassal → emperor: spawned (app loaded, about to serve).
pub const FROM_VASSAL_SPAWNED: u8 = 1;
/// Vassal → emperor: ask for the config again (pushed configs only).
pub const FROM_VASSAL_CONFIG_REQUEST: u8 = 2;
/// Vassal → emperor: a worker entered its accept loop.
pub const FROM_VASSAL_ACCEPTING: u8 = 5;
/// Vassal → emperor: loyal (liege: sent once the first worker is accepting).
pub const FROM_VASSAL_LOYAL: u8 = 17;
/// Vassal → emperor: voluntary shutdown (die-on-idle).
pub const FROM_VASSAL_VOLUNTARY_SHUTDOWN: u8 = 22;
/// Vassal → emperor: heartbeat.
pub const FROM_VASSAL_HEARTBEAT: u8 = 26;
/// Vassal → emperor: SOS (broodlord; not acted on by liege).
pub const FROM_VASSAL_SOS: u8 = 30;
