//! The operations the core started and is waiting for, with what to do when each finishes.
//!
//! Store results come in the order of the operations (the driver's contract, see
//! [`crate::Input::Stored`]), so the oldest waiting operation is almost always the one that
//! finished: the queue is searched from its front, with no hashing per operation.

use std::collections::VecDeque;

use crate::output::OpId;

/// Waiting operations, each with its continuation `P`, oldest first.
#[derive(Debug)]
pub(crate) struct Ops<P> {
    next: u64,
    waiting: VecDeque<(OpId, P)>,
}

impl<P> Default for Ops<P> {
    fn default() -> Ops<P> {
        Ops {
            next: 1,
            waiting: VecDeque::new(),
        }
    }
}

impl<P> Ops<P> {
    /// Registers a new operation whose result will be handled by `then`; returns its id.
    pub(crate) fn start(&mut self, then: P) -> OpId {
        let id = OpId(self.next);
        self.next += 1;
        self.waiting.push_back((id, then));
        id
    }

    /// The continuation of `id`, removed; `None` for an id that is not waiting.
    pub(crate) fn finish(&mut self, id: OpId) -> Option<P> {
        let at = self.waiting.iter().position(|(w, _)| *w == id)?;
        self.waiting.remove(at).map(|(_, p)| p)
    }

    /// How many operations are waiting.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_finish_in_any_order_and_once() {
        let mut ops = Ops::default();
        let a = ops.start("a");
        let b = ops.start("b");
        let c = ops.start("c");
        assert_eq!(ops.len(), 3);
        assert_eq!(ops.finish(b), Some("b"));
        assert_eq!(ops.finish(b), None);
        assert_eq!(ops.finish(a), Some("a"));
        assert_eq!(ops.finish(c), Some("c"));
        assert_eq!(ops.len(), 0);
        assert_eq!(ops.finish(OpId(99)), None);
    }
}
