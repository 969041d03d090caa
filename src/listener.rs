//! How a stopping replica stops listening without losing a request a client already sent.
//!
//! Closing a listening socket resets every connection still waiting in its accept queue. The
//! kernel completed those handshakes, so the client (a proxy) may already have written its
//! request into one, and a proxy does not resend a POST it has sent: its client gets a 502. So
//! first no new connection may complete: a socket filter drops every packet sent to the
//! listening socket, a client's SYN goes unanswered and is sent again a second later, by when the
//! socket no longer listens and the connection is refused, which a proxy retries on another
//! replica. Then the server accepts what is queued, and only an empty queue is closed.

use std::io;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;

/// How long the queue may take to empty (it takes microseconds unless every worker is at
/// `server.max_connections_per_worker`). A SYN held back is sent again after a second; holding
/// longer only keeps those clients waiting, so after this the queue is closed as it is.
const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// Stops listening on `listener` (the socket `server` accepts on): no new connection from now
/// on, every one already queued accepted first.
pub async fn stop_listening(listener: TcpListener, server: Option<&ServerHandle>) {
    match hold_new_connections(&listener) {
        Ok(()) => empty_the_queue(&listener).await,
        Err(error) => tracing::warn!(
            %error,
            "cannot hold new connections back: any still in the listen queue will be reset"
        ),
    }
    // Accept no more (so actix does not poll the socket it is about to lose), then shutdown(2)
    // takes the socket out of LISTEN on Linux: new connections are refused, accepted ones stay.
    if let Some(server) = server {
        server.pause().await;
    }
    let stopped = std::net::TcpStream::from(std::os::fd::OwnedFd::from(listener))
        .shutdown(std::net::Shutdown::Both);
    if let Err(error) = stopped {
        tracing::warn!(%error, "cannot stop listening before the drain");
    }
}

async fn empty_the_queue(listener: &TcpListener) {
    let started = Instant::now();
    loop {
        match queued_connections(listener) {
            Ok(0) => return,
            Ok(queued) if started.elapsed() >= QUEUE_WAIT => {
                tracing::warn!(queued, "the listen queue did not empty in time; closing it");
                return;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(error) => {
                tracing::warn!(%error, "cannot read the listen queue's length; closing it");
                return;
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn hold_new_connections(listener: &TcpListener) -> io::Result<()> {
    // A classic BPF program of one instruction, `ret #0`: keep no byte of any packet.
    let drop_everything = socket2::SockFilter::new((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, 0);
    socket2::SockRef::from(listener).attach_filter(&[drop_everything])
}

#[cfg(target_os = "linux")]
fn queued_connections(listener: &TcpListener) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain integers, valid zeroed; the kernel writes at most `length`
    // bytes into it and says how many it wrote.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let failed = unsafe {
        libc::getsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut length,
        )
    } != 0;
    if failed {
        return Err(io::Error::last_os_error());
    }
    // For a listening socket Linux reports the accept queue's length in this field.
    Ok(info.tcpi_unacked)
}

#[cfg(not(target_os = "linux"))]
fn hold_new_connections(_: &TcpListener) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "socket filters are Linux only",
    ))
}

#[cfg(not(target_os = "linux"))]
fn queued_connections(_: &TcpListener) -> io::Result<u32> {
    Ok(0)
}
