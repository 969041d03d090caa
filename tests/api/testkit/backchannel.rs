//! An app's back-channel logout endpoint on loopback (OpenID Connect Back-Channel Logout 1.0):
//! it keeps every POST it is sent, answers with the status it is told, can hold its answers
//! until released (a slow app), and can go down (its port refuses connections) and come back
//! on the same port.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub content_type: Option<String>,
    /// The form's `logout_token`.
    pub logout_token: Option<String>,
}

struct State {
    received: Vec<Received>,
    status: u16,
    /// Requests waiting for `release`.
    held: usize,
}

pub struct LogoutReceiver {
    port: u16,
    state: Arc<Mutex<State>>,
    /// `true` while answers are held back.
    hold: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl LogoutReceiver {
    /// Listening, answering 200.
    pub async fn start() -> LogoutReceiver {
        let receiver = LogoutReceiver::down().await;
        receiver.up().await;
        receiver
    }

    /// With a port of its own that refuses connections until `up`.
    pub async fn down() -> LogoutReceiver {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        LogoutReceiver {
            port,
            state: Arc::new(Mutex::new(State {
                received: Vec::new(),
                status: 200,
                held: 0,
            })),
            hold: watch::channel(false).0,
            task: Mutex::new(None),
        }
    }

    /// The `backchannel_logout_uri` to register.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/backchannel-logout", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("lock").received.clone()
    }

    /// The logout tokens received, in order.
    pub fn tokens(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter_map(|r| r.logout_token)
            .collect()
    }

    /// Answers from now on with `status`.
    pub fn answer_with(&self, status: u16) {
        self.state.lock().expect("lock").status = status;
    }

    /// Holds every answer until `release`.
    pub fn hold(&self) {
        self.hold.send_replace(true);
    }

    pub fn release(&self) {
        self.hold.send_replace(false);
    }

    /// How many requests are waiting for `release`.
    pub fn held(&self) -> usize {
        self.state.lock().expect("lock").held
    }

    /// Listens (again) on its port.
    pub async fn up(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the receiver's port");
        let (state, hold) = (self.state.clone(), self.hold.subscribe());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(answer(stream, state.clone(), hold.clone()));
            }
        });
        if let Some(old) = self.task.lock().expect("lock").replace(task) {
            old.abort();
        }
    }

    /// Stops listening: connections are refused.
    pub async fn stop(&self) {
        let task = self.task.lock().expect("lock").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for LogoutReceiver {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

async fn answer(
    mut stream: tokio::net::TcpStream,
    state: Arc<Mutex<State>>,
    mut hold: watch::Receiver<bool>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let body = &request[head_end..head_end + length];
    let logout_token = form_urlencoded::parse(body)
        .find(|(name, _)| name == "logout_token")
        .map(|(_, value)| value.into_owned());
    let status = {
        let mut state = state.lock().expect("lock");
        state.received.push(Received {
            method: head.split_whitespace().next().unwrap_or("").to_string(),
            content_type: header("content-type"),
            logout_token,
        });
        state.held += 1;
        state.status
    };
    let _ = hold.wait_for(|held| !held).await;
    state.lock().expect("lock").held -= 1;
    let response =
        format!("HTTP/1.1 {status} Answer\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
