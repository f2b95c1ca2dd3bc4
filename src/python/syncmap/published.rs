//! [`Published`]: an arc-swap cell (`sync.Map`'s `read` and `entry.p`) whose
//! current pointer a reader holding the GIL may also look at without a guard.
//!
//! An arc-swap load costs two locked instructions (it records a debt, then
//! pays it back when the guard drops), and a `Load` makes two of them: one for
//! `read`, one for `entry.p`. On GIL builds a reader that holds the GIL and
//! runs no Python code until it is done cannot see either cell change or the
//! old value freed, provided every change is made attached too (true of
//! `SyncMap`: it never releases the GIL except to wait for its mutex). So each
//! cell also keeps its current pointer in a plain atomic, updated by every
//! change before the change returns, and [`Published::peek`] reads that: no
//! locked instruction. Free-threaded builds have no such guarantee and keep
//! only the arc-swap path (`peek` does not exist there).

use arc_swap::{ArcSwapAny, AsRaw, Guard, RefCnt};
#[cfg(not(Py_GIL_DISABLED))]
use pyo3::Python;
#[cfg(not(Py_GIL_DISABLED))]
use std::sync::atomic::{AtomicPtr, Ordering};

pub struct Published<T: RefCnt> {
    cell: ArcSwapAny<T>,
    /// `cell`'s current pointer (null for `None`).
    #[cfg(not(Py_GIL_DISABLED))]
    raw: AtomicPtr<T::Base>,
}

impl<T: RefCnt> Published<T> {
    pub fn new(value: T) -> Self {
        Published {
            #[cfg(not(Py_GIL_DISABLED))]
            raw: AtomicPtr::new(T::as_ptr(&value)),
            cell: ArcSwapAny::new(value),
        }
    }

    #[inline]
    fn mirror(&self, _p: *mut T::Base) {
        #[cfg(not(Py_GIL_DISABLED))]
        self.raw.store(_p, Ordering::Release);
    }

    /// A guarded load (any thread, attached or not).
    #[inline]
    pub fn load(&self) -> Guard<T> {
        self.cell.load()
    }

    #[inline]
    pub fn load_full(&self) -> T {
        self.cell.load_full()
    }

    /// Stores `new` and hands back the previous value (which the caller drops
    /// when it may release objects).
    pub fn swap(&self, new: T) -> T {
        let p = T::as_ptr(&new);
        let prev = self.cell.swap(new);
        self.mirror(p);
        prev
    }

    /// Stores `new` if the current value is `current` (by pointer); returns
    /// what was there, as arc-swap does.
    pub fn compare_and_swap<C: AsRaw<T::Base>>(&self, current: C, new: T) -> Guard<T> {
        let cur = current.as_raw();
        let p = T::as_ptr(&new);
        let prev = self.cell.compare_and_swap(cur, new);
        if T::as_ptr(&prev) == cur {
            self.mirror(p);
        }
        prev
    }

    /// The current pointer, with no guard.
    ///
    /// # Safety
    ///
    /// The caller holds the GIL (a GIL build), and from this call until it no
    /// longer uses the pointer or anything reached through it, it runs no
    /// Python code, releases no object and allocates no GC-tracked object
    /// (anything that could let another thread run, or run a finalizer). Every
    /// change of the cell is made by a thread holding the GIL, so the value
    /// stays current, and alive, for that long.
    #[cfg(not(Py_GIL_DISABLED))]
    #[inline]
    pub unsafe fn peek(&self, _py: Python<'_>) -> *const T::Base {
        self.raw.load(Ordering::Acquire)
    }
}
