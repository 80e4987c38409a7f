//! The tokio-tungstenite peer of `corral-bench ws judge`: `/ws` echoes every message back
//! to its sender; `/broadcast` sends every message to every client connected to
//! `/broadcast`, its sender included. Any other path is refused during the handshake.
//!
//! ```text
//! ws_tungstenite_peer PORT      # listens on 127.0.0.1:PORT (0: any free port)
//! ```
//!
//! It prints `listening on ws://127.0.0.1:PORT` once it accepts, and serves until killed.
//! The runtime is tokio's multi-threaded one with its default worker count (one per core),
//! as a tokio server would be deployed. A broadcast client's messages are queued per
//! receiver (an unbounded channel, drained by that client's writer task), so one slow
//! receiver delays only itself; the load client bounds what is in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

/// The clients of `/broadcast`: each one's queue, by id.
#[derive(Default)]
struct Room {
    next: AtomicU64,
    members: Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>,
}

impl Room {
    fn join(&self) -> (u64, mpsc::UnboundedReceiver<Message>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.members.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        (id, rx)
    }

    fn leave(&self, id: u64) {
        self.members.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    /// Queues `m` for every member (a payload clone is a reference count, not a copy).
    fn send_all(&self, m: &Message) {
        for tx in self.members.lock().unwrap_or_else(|e| e.into_inner()).values() {
            let _ = tx.send(m.clone());
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Echo,
    Broadcast,
}

#[tokio::main]
async fn main() {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(p)) => p,
        _ => {
            eprintln!("usage: ws_tungstenite_peer PORT (0: any free port)");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ws_tungstenite_peer: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().expect("a bound listener has an address");
    println!("listening on ws://{addr}");
    let room = Arc::new(Room::default());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, Arc::clone(&room)));
            }
            // Out of descriptors (or another transient failure): keep serving the open ones.
            Err(e) => {
                eprintln!("ws_tungstenite_peer: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve(stream: TcpStream, room: Arc<Room>) {
    let mut route = None;
    let pick = |req: &Request, res: Response| -> Result<Response, ErrorResponse> {
        route = match req.uri().path() {
            "/ws" => Some(Route::Echo),
            "/broadcast" => Some(Route::Broadcast),
            _ => None,
        };
        if route.is_some() {
            return Ok(res);
        }
        let mut refuse = ErrorResponse::new(Some("websocket routes: /ws (echo), /broadcast\n".into()));
        *refuse.status_mut() = StatusCode::NOT_FOUND;
        Err(refuse)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, pick).await else { return };
    match route {
        Some(Route::Echo) => echo(ws).await,
        Some(Route::Broadcast) => broadcast(ws, room).await,
        None => {}
    }
}

async fn echo(mut ws: tokio_tungstenite::WebSocketStream<TcpStream>) {
    while let Some(Ok(m)) = ws.next().await {
        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
            return;
        }
    }
}

async fn broadcast(ws: tokio_tungstenite::WebSocketStream<TcpStream>, room: Arc<Room>) {
    let (id, mut queue) = room.join();
    let (mut sink, mut source) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(m) = queue.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(m)) = source.next().await {
        if m.is_text() || m.is_binary() {
            room.send_all(&m);
        }
    }
    room.leave(id);
    writer.abort();
}
