//! The shard's index from client id to session key.
//!
//! It stores only the keys: the ids live in the sessions, so each id is one
//! allocation, not two (an idle fleet's memory is mostly per-connection
//! overhead of this kind). A lookup hashes the id and compares it with the
//! candidates' `Session::client_id`. It must never hold a key whose session
//! is gone: the shard removes the entry before the session.

use super::session::Session;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use slab::Slab;

#[derive(Default)]
pub struct ClientIds {
    table: HashTable<usize>,
    hasher: ahash::RandomState,
}

impl ClientIds {
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The session key of `id`, if one is indexed.
    pub fn get(&self, id: &str, sessions: &Slab<Session>) -> Option<usize> {
        self.table
            .find(self.hash(id), |&k| is_id(sessions, k, id))
            .copied()
    }

    pub fn contains(&self, id: &str, sessions: &Slab<Session>) -> bool {
        self.get(id, sessions).is_some()
    }

    /// Indexes session `key` under its client id, replacing the entry of
    /// another session with the same id.
    pub fn insert(&mut self, key: usize, sessions: &Slab<Session>) {
        let Some(session) = sessions.get(key) else {
            return;
        };
        let id: &str = &session.client_id;
        let hasher = &self.hasher;
        let rehash = |&k: &usize| {
            sessions
                .get(k)
                .map_or(0, |s| hasher.hash_one(&*s.client_id))
        };
        match self
            .table
            .entry(hasher.hash_one(id), |&k| is_id(sessions, k, id), rehash)
        {
            Entry::Occupied(mut e) => *e.get_mut() = key,
            Entry::Vacant(e) => {
                e.insert(key);
            }
        }
    }

    /// Removes the entry of `id` if it is session `key`'s.
    pub fn remove(&mut self, id: &str, key: usize) {
        if let Ok(e) = self.table.find_entry(self.hash(id), |&k| k == key) {
            e.remove();
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

fn is_id(sessions: &Slab<Session>, key: usize, id: &str) -> bool {
    sessions.get(key).is_some_and(|s| &*s.client_id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytestring::ByteString;

    fn session(id: &str) -> Session {
        Session::new(ByteString::from(id), 0)
    }

    #[test]
    fn finds_inserts_replaces_and_removes() {
        let mut sessions = Slab::new();
        let mut ids = ClientIds::default();
        let a = sessions.insert(session("a"));
        let b = sessions.insert(session("b"));
        ids.insert(a, &sessions);
        ids.insert(b, &sessions);
        assert_eq!(ids.get("a", &sessions), Some(a));
        assert_eq!(ids.get("b", &sessions), Some(b));
        assert_eq!(ids.get("c", &sessions), None);
        // A new session with the same id takes the entry over.
        let a2 = sessions.insert(session("a"));
        ids.insert(a2, &sessions);
        assert_eq!(ids.len(), 2);
        assert_eq!(ids.get("a", &sessions), Some(a2));
        // Removing the old session's entry leaves the new one's.
        ids.remove("a", a);
        assert_eq!(ids.get("a", &sessions), Some(a2));
        ids.remove("a", a2);
        assert!(!ids.contains("a", &sessions));
        assert!(ids.contains("b", &sessions));
    }

    #[test]
    fn grows_past_many_ids() {
        let mut sessions = Slab::new();
        let mut ids = ClientIds::default();
        for i in 0..10_000 {
            let k = sessions.insert(session(&format!("client-{i}")));
            ids.insert(k, &sessions);
        }
        assert_eq!(ids.len(), 10_000);
        for i in (0..10_000).step_by(7) {
            let k = ids.get(&format!("client-{i}"), &sessions).expect("indexed");
            assert_eq!(&*sessions[k].client_id, format!("client-{i}"));
        }
    }
}
