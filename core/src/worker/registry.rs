//! A worker's table of the connections registered with its epoll, keyed by the token
//! epoll hands back. Tokens carry a generation, so an event that arrives for a slot
//! after its connection closed (and the slot was reused) finds nothing.

pub(crate) struct Registry<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

struct Slot<T> {
    gen: u32,
    value: Option<T>,
}

impl<T: Clone> Registry<T> {
    pub fn new() -> Registry<T> {
        Registry { slots: Vec::new(), free: Vec::new(), len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Stores a value made from its token and returns the token.
    pub fn insert_with(&mut self, make: impl FnOnce(u64) -> T) -> (u64, T) {
        let idx = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot { gen: 0, value: None });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[idx];
        // 31-bit generations keep every token below 2^63, where listener tokens start.
        slot.gen = slot.gen.wrapping_add(1) & 0x7FFF_FFFF;
        let token = (u64::from(slot.gen) << 32) | idx as u64;
        let v = make(token);
        slot.value = Some(v.clone());
        self.len += 1;
        (token, v)
    }

    pub fn get(&self, token: u64) -> Option<&T> {
        let slot = self.slots.get((token & 0xFFFF_FFFF) as usize)?;
        (u64::from(slot.gen) == token >> 32).then_some(slot.value.as_ref()?)
    }

    pub fn remove(&mut self, token: u64) -> Option<T> {
        let idx = (token & 0xFFFF_FFFF) as usize;
        let slot = self.slots.get_mut(idx)?;
        if u64::from(slot.gen) != token >> 32 {
            return None;
        }
        let v = slot.value.take()?;
        self.free.push(idx as u32);
        self.len -= 1;
        Some(v)
    }

    pub fn values(&self) -> Vec<T> {
        self.slots.iter().filter_map(|s| s.value.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Registry;

    #[test]
    fn stale_tokens_find_nothing() {
        let mut r = Registry::new();
        let (a, _) = r.insert_with(|t| t);
        assert_eq!(r.get(a), Some(&a));
        assert_eq!(r.remove(a), Some(a));
        let (b, _) = r.insert_with(|t| t);
        assert_ne!(a, b, "same slot, new generation");
        assert_eq!(r.get(a), None);
        assert_eq!(r.remove(a), None);
        assert_eq!(r.len(), 1);
    }
}
