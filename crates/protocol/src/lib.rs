//! Sans-io wire formats: the uwsgi packet (uWSGI semantics §4.1), HTTP/1.x request heads and
//! chunked bodies, the emperor↔vassal single-byte protocol (§7.4) and the master↔worker
//! control messages.
//!
//! Nothing here does I/O, spawns tasks or knows about Python.

pub mod control;
pub mod emperor;
pub mod http1;
pub mod uwsgi;
