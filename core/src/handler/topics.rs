//! Topics: websockets subscribe to names, and a publish reaches every subscriber from
//! inside the engine, whatever worker owns each socket. The message is encoded once
//! uncompressed and, if any subscriber agreed permessage-deflate, compressed once (the
//! server never keeps compression context, so one compressed frame suits every such
//! subscriber); each subscriber then gets a copy queued on its connection. No call
//! into the app per recipient.
//!
//! Invariant: a socket is in a topic's list exactly when the topic is in its own list
//! (`WsShared::topics`); both change under the registry's write lock. A socket leaves
//! every topic when it closes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::ws::{frame, SendStatus, WsShared};
use crate::frame::ws::{Compression, Kind};
use crate::sync::lock;

/// The engine's topic registry.
#[derive(Default)]
pub(crate) struct Topics {
    map: RwLock<HashMap<String, Vec<Arc<WsShared>>>>,
}

impl Topics {
    pub(crate) fn subscribe(&self, ws: &Arc<WsShared>, topic: &str) -> bool {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let mut mine = lock(&ws.topics);
        if mine.iter().any(|t| t == topic) {
            return false;
        }
        mine.push(topic.to_owned());
        map.entry(topic.to_owned()).or_default().push(Arc::clone(ws));
        true
    }

    pub(crate) fn unsubscribe(&self, ws: &Arc<WsShared>, topic: &str) -> bool {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let mut mine = lock(&ws.topics);
        let Some(i) = mine.iter().position(|t| t == topic) else { return false };
        mine.swap_remove(i);
        Self::remove(&mut map, ws, topic);
        true
    }

    /// A closed socket leaves every topic.
    pub(crate) fn leave_all(&self, ws: &Arc<WsShared>) {
        if lock(&ws.topics).is_empty() {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for topic in std::mem::take(&mut *lock(&ws.topics)) {
            Self::remove(&mut map, ws, &topic);
        }
    }

    fn remove(map: &mut HashMap<String, Vec<Arc<WsShared>>>, ws: &Arc<WsShared>, topic: &str) {
        if let Some(subs) = map.get_mut(topic) {
            subs.retain(|s| !Arc::ptr_eq(s, ws));
            if subs.is_empty() {
                map.remove(topic);
            }
        }
    }

    /// Subscribers of `topic` now.
    pub(crate) fn count(&self, topic: &str) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(topic).map_or(0, Vec::len)
    }

    /// Sends to every subscriber of `topic` except the socket `except`; returns how many
    /// it was queued for (dropped sends, for back-pressure, are not counted).
    pub(crate) fn publish(&self, topic: &str, kind: Kind, payload: &[u8], except: Option<u64>) -> usize {
        // The recipients are copied out so no lock is held while queueing (a queue may
        // wake a worker, and a drain callback may subscribe).
        let subs: Vec<Arc<WsShared>> = match self.map.read().unwrap_or_else(|e| e.into_inner()).get(topic) {
            Some(s) => s.iter().filter(|s| Some(s.id) != except).cloned().collect(),
            None => return 0,
        };
        // One encoding per compression setting (in practice: plain, and deflate with
        // the full window).
        let mut frames: Vec<(Compression, Vec<u8>)> = Vec::with_capacity(2);
        let mut queued = 0;
        for ws in &subs {
            let i = match frames.iter().position(|(c, _)| *c == ws.compression) {
                Some(i) => i,
                None => {
                    frames.push((ws.compression, frame(&ws.engine.counters.ws, kind, payload, ws.compression)));
                    frames.len() - 1
                }
            };
            let frame = &frames[i].1;
            if ws.send_encoded(frame.clone(), payload.len()) != SendStatus::Dropped {
                queued += 1;
            }
        }
        queued
    }
}
