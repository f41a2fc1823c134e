//! API sessions: the token is a 26-character PHP session id; each session
//! has its user and its active entities (root, recursive, after login).

use std::collections::HashMap;

use rand::Rng;

/// One `initSession` worth of state.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) user_id: i64,
    pub(crate) login: String,
    pub(crate) active_entity: i64,
    pub(crate) recursive: bool,
    pub(crate) active_entities: Vec<i64>,
}

#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_token: HashMap<String, Session>,
}

/// PHP's default session id alphabet (5 bits per character).
const SID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";

impl Sessions {
    pub(crate) fn open(&mut self, session: Session) -> String {
        let mut rng = rand::rng();
        loop {
            let token: String = (0..26)
                .map(|_| SID_ALPHABET[rng.random_range(0..SID_ALPHABET.len())] as char)
                .collect();
            if !self.by_token.contains_key(&token) {
                self.by_token.insert(token.clone(), session);
                return token;
            }
        }
    }

    pub(crate) fn get(&self, token: &str) -> Option<&Session> {
        self.by_token.get(token)
    }

    pub(crate) fn get_mut(&mut self, token: &str) -> Option<&mut Session> {
        self.by_token.get_mut(token)
    }

    pub(crate) fn kill(&mut self, token: &str) -> bool {
        self.by_token.remove(token).is_some()
    }

    pub(crate) fn invalidate_all(&mut self) {
        self.by_token.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.by_token.len()
    }
}
