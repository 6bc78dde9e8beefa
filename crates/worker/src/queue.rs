//! The queue between the I/O thread and the Python threads: a FIFO with a condition variable.
//! Its length is bounded by the I/O side's request semaphore, so pushing never blocks.

use liege_wsgi::types::Request;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

#[derive(Default)]
pub struct JobQueue {
    st: Mutex<QueueState>,
    cv: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Request>,
    closed: bool,
    /// Threads blocked in `pop`: a push only pays for a futex wake when someone waits.
    waiters: usize,
}

impl JobQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hand a request to a Python thread. Returns it back if the queue is closed.
    pub fn push(&self, req: Request) -> Result<(), Box<Request>> {
        let mut st = self.lock();
        if st.closed {
            return Err(Box::new(req));
        }
        st.jobs.push_back(req);
        let wake = st.waiters > 0;
        drop(st);
        if wake {
            self.cv.notify_one();
        }
        Ok(())
    }

    /// The next request without waiting.
    pub fn try_pop(&self) -> Option<Request> {
        self.lock().jobs.pop_front()
    }

    /// Wait for the next request; `None` once the queue is closed and empty.
    pub fn pop(&self) -> Option<Request> {
        let mut st = self.lock();
        loop {
            if let Some(r) = st.jobs.pop_front() {
                return Some(r);
            }
            if st.closed {
                return None;
            }
            st.waiters += 1;
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            st.waiters -= 1;
        }
    }

    /// No more requests will come: wake every waiting thread.
    pub fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }
}

impl liege_wsgi::RequestSource for JobQueue {
    fn try_next(&self) -> Option<Request> {
        self.try_pop()
    }
    fn next(&self) -> Option<Request> {
        self.pop()
    }
}
