//! Scoped access to the running request's [`Exchange`].
//!
//! `start_response`, its `write()` and `wsgi.input` are Python objects: the app may keep
//! them past the request, or hand them to another thread. They reach the connection only
//! through an [`ExSlot`], which holds a pointer to the worker's exchange while (and only
//! while) [`crate::Handler::call`] runs; every access takes the slot's lock, and the slot is
//! emptied before `call` returns, so a late call finds nothing instead of a dangling pointer.

use crate::types::Exchange;
use std::marker::PhantomData;
use std::sync::{Mutex, TryLockError};

/// The erased pointer. Only dereferenced under the slot's lock while a [`Scope`] is alive.
struct ExPtr(*mut (dyn Exchange + 'static));

// SAFETY: the pointee is `Exchange: Send`, and the pointer is only used under the lock.
unsafe impl Send for ExPtr {}

#[derive(Default)]
pub struct ExSlot {
    ptr: Mutex<Option<ExPtr>>,
}

/// Sets the slot for its lifetime (the borrow of the exchange), empties it on drop.
pub struct Scope<'s, 'e> {
    slot: &'s ExSlot,
    _ex: PhantomData<&'e mut dyn Exchange>,
}

impl ExSlot {
    /// Give the slot `ex` until the returned scope is dropped.
    pub fn enter<'s, 'e>(&'s self, ex: &'e mut (dyn Exchange + 'e)) -> Scope<'s, 'e> {
        let raw: *mut (dyn Exchange + 'e) = ex;
        // SAFETY: only the lifetime is erased; the scope (which borrows `ex` for 'e) empties
        // the slot before 'e ends, and every dereference happens under the lock.
        let raw: *mut (dyn Exchange + 'static) = unsafe { std::mem::transmute(raw) };
        *self.lock() = Some(ExPtr(raw));
        Scope {
            slot: self,
            _ex: PhantomData,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ExPtr>> {
        self.ptr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the exchange; `None` once the request is over.
    pub fn with<R>(&self, f: impl FnOnce(&mut dyn Exchange) -> R) -> Option<R> {
        let g = self.lock();
        // SAFETY: set only while its scope lives (see `enter`); we hold the lock.
        g.as_ref().map(|p| f(unsafe { &mut *p.0 }))
    }

    /// [`ExSlot::with`] without waiting for the lock: `Err(())` when another thread holds it.
    pub fn try_with<R>(&self, f: impl FnOnce(&mut dyn Exchange) -> R) -> Result<Option<R>, ()> {
        let g = match self.ptr.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(()),
        };
        // SAFETY: as in `with`.
        Ok(g.as_ref().map(|p| f(unsafe { &mut *p.0 })))
    }
}

impl Drop for Scope<'_, '_> {
    fn drop(&mut self) {
        *self.slot.lock() = None;
    }
}
