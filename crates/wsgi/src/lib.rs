//! liege-wsgi: the pyo3 bridge between the worker's I/O thread and the Python app.
//!
//! Theory of operation: the worker initializes CPython on the process main thread
//! ([`interp::initialize`]), loads the app ([`app::load`]) and builds one [`Handler`]. Each
//! Python thread attaches once and then loops: wait for a [`types::Request`] with the GIL
//! released, build the environ, call the app, hand a [`types::ResponseHead`] back through a
//! oneshot. Bodies cross in bounded channels so neither side holds a whole large body, and
//! every blocking wait releases the GIL.

pub mod app;
pub mod handler;
pub mod input;
pub mod interp;
pub mod response;
pub mod types;

pub use handler::{EnvironOptions, Handler};
