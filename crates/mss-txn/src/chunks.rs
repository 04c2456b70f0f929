//! A vector stored in fixed-size chunks: the slab's slots.
//!
//! A `Vec` that grows doubles its buffer and copies every element into the new one. The
//! slab holds every live transaction (~380 bytes each) and under a held call load grows
//! to hundreds of thousands of them (two answered INVITEs per call wait out 32 s): the
//! doubling from 262,144 slots copied ~100 MB and touched 200 MB of fresh pages in one go,
//! a stall of the worker long enough for the peers to retransmit. Here growth adds one
//! chunk of [`CHUNK`] slots and moves nothing; an element is found with one more
//! indirection.

/// Elements per chunk.
pub(crate) const CHUNK: usize = 1024;

/// A vector of `T` in chunks of [`CHUNK`] (see the module docs).
#[derive(Debug)]
pub(crate) struct Chunked<T> {
    /// Full chunks, then the last one (never empty while it is kept).
    chunks: Vec<Vec<T>>,
    /// An emptied chunk kept for the next growth, so that a length going back and forth
    /// across a chunk boundary does not allocate and free a chunk each time.
    spare: Option<Vec<T>>,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            spare: None,
        }
    }
}

impl<T> Chunked<T> {
    /// The number of elements.
    pub(crate) fn len(&self) -> usize {
        match self.chunks.last() {
            Some(last) => (self.chunks.len() - 1) * CHUNK + last.len(),
            None => 0,
        }
    }

    /// Slots allocated (the chunks in use and the spare).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        (self.chunks.len() + usize::from(self.spare.is_some())) * CHUNK
    }

    /// The element at `index`.
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    /// The element at `index`, for changing it.
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.chunks.get_mut(index / CHUNK)?.get_mut(index % CHUNK)
    }

    /// The last element.
    pub(crate) fn last(&self) -> Option<&T> {
        self.chunks.last()?.last()
    }

    /// Appends `value`.
    pub(crate) fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(value),
            _ => {
                let mut chunk = self
                    .spare
                    .take()
                    .unwrap_or_else(|| Vec::with_capacity(CHUNK));
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
    }

    /// Removes the last element.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let last = self.chunks.last_mut()?;
        let value = last.pop();
        if last.is_empty() {
            // Keep one emptied chunk (its buffer) for the next growth, free the rest.
            self.spare = self.chunks.pop();
            if self.chunks.len().saturating_mul(4) < self.chunks.capacity()
                && self.chunks.capacity() > 64
            {
                self.chunks.shrink_to(self.chunks.len().saturating_mul(2));
            }
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_vector_across_chunk_boundaries() {
        let mut c = Chunked::default();
        let mut v = Vec::new();
        for i in 0..(3 * CHUNK + 5) {
            c.push(i);
            v.push(i);
        }
        assert_eq!(c.len(), v.len());
        for i in [0, 1, CHUNK - 1, CHUNK, 2 * CHUNK + 7, 3 * CHUNK + 4] {
            assert_eq!(c.get(i), v.get(i));
        }
        assert_eq!(c.get(3 * CHUNK + 5), None);
        *c.get_mut(CHUNK).unwrap() = 42;
        assert_eq!(c.get(CHUNK), Some(&42));
        while let Some(x) = c.pop() {
            assert_eq!(Some(x), v.pop().map(|y| if y == CHUNK { 42 } else { y }));
            assert_eq!(c.len(), v.len());
            assert_eq!(
                c.last(),
                v.last().map(|y| if *y == CHUNK { &42 } else { y })
            );
        }
        assert_eq!(c.len(), 0);
        assert!(c.capacity() <= CHUNK, "one spare chunk kept at most");
    }
}
